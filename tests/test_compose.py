"""compose.yaml: valid against the Compose schema, and wired the way the README says."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "tests" / "data" / "compose-subset.schema.json"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "compose.yaml").read_text())
    return loaded


def test_valid_against_the_schema(compose: dict[str, Any]) -> None:
    schema = json.loads(SCHEMA.read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    jsonschema.Draft7Validator(schema).validate(compose)


def test_the_schema_rejects_what_compose_rejects(compose: dict[str, Any]) -> None:
    validator = jsonschema.Draft7Validator(json.loads(SCHEMA.read_text()))
    bad_condition = json.loads(json.dumps(compose))
    bad_condition["services"]["api"]["depends_on"]["redis"]["condition"] = "service_ready"
    misspelt = json.loads(json.dumps(compose))
    misspelt["services"]["worker"]["healthchek"] = {"test": ["CMD", "true"]}
    assert not validator.is_valid(bad_condition)
    assert not validator.is_valid(misspelt)


def test_every_service_is_there(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) == {
        "redis",
        "postgres",
        "migrate",
        "api",
        "worker",
        "dispatcher",
        "emulator",
    }


def test_worker_can_be_scaled(compose: dict[str, Any]) -> None:
    worker = compose["services"]["worker"]
    assert "container_name" not in worker
    assert "ports" not in worker
    assert worker["command"] == ["worker"]


def conditions(service: dict[str, Any]) -> dict[str, str]:
    return {name: dep["condition"] for name, dep in service.get("depends_on", {}).items()}


def test_start_order(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert conditions(services["migrate"]) == {"postgres": "service_healthy"}
    for name in ("api", "worker", "dispatcher"):
        assert conditions(services[name])["migrate"] == "service_completed_successfully"
        assert conditions(services[name])["redis"] == "service_healthy"
    assert services["migrate"]["command"] == ["migrate"]
    assert services["migrate"]["restart"] == "no"


def test_healthchecks(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])
    assert "ping" in services["redis"]["healthcheck"]["test"]
    assert "/healthz" in " ".join(services["api"]["healthcheck"]["test"])
    assert "healthcheck" in services["emulator"]


def test_redis_keeps_its_data(compose: dict[str, Any]) -> None:
    redis = compose["services"]["redis"]
    assert redis["command"][redis["command"].index("--appendonly") + 1] == "yes"
    assert any(v.startswith("redis-data:") for v in redis["volumes"])
    assert any(v.startswith("postgres-data:") for v in compose["services"]["postgres"]["volumes"])


def test_shared_environment(compose: dict[str, Any]) -> None:
    services = compose["services"]
    shared = compose["x-aivbatch-env"]
    assert shared["AIVBATCH_AIVVM_URL"].endswith(":-http://emulator:8765}")
    assert shared["AIVBATCH_REDIS_URL"] == "redis://redis:6379/0"
    assert shared["AIVBATCH_DATABASE_URL"].startswith("postgresql+psycopg://")
    for name in ("migrate", "api", "worker", "dispatcher"):
        assert services[name]["environment"] == shared
        assert services[name]["image"] == "aivbatch:latest"


def test_every_variable_is_a_setting(compose: dict[str, Any]) -> None:
    from models.settings import Settings

    known = {f"AIVBATCH_{name.upper()}" for name in Settings.model_fields}
    assert set(compose["x-aivbatch-env"]) <= known


def test_dockerfile_runs_the_cli() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r'^ENTRYPOINT \["aivbatch"\]$', dockerfile, re.M)
    assert "FROM python:3.1" in dockerfile
