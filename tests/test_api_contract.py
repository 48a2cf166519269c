"""`/openapi.json` is the contract: every route the app serves is in it, with typed answers
and every error status it can give; real answers of every route match it; a bounded
schema-driven fuzz run (schemathesis) over the whole API finds no server error and no
conformance failure. Routes are discovered from the app and the document, never listed."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import openai
import pytest
from fastapi.routing import iter_route_contexts
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from api.app import create_app
from models.batches import cancel_batch, finalize
from models.db import Database
from models.settings import Settings
from models.types import utcnow
from tests.support.api import ApiServer, Tenants
from tests.support.wait import wait_until

ROOT = Path(__file__).resolve().parents[1]
ST = str(Path(sys.executable).with_name("st"))
# Fixed, so a CI run is reproducible; pass another with AIVBATCH_TEST_FUZZ_SEED to explore.
FUZZ_SEED = os.environ.get("AIVBATCH_TEST_FUZZ_SEED", "20261130")
FUZZ_EXAMPLES = "8"
# Far above what the fuzz run sends, so it reaches the routes rather than the limits.
UNLIMITED = {
    "KEY_REQUESTS_PER_SECOND": "100000",
    "AUTH_FAILURES_PER_MINUTE": "100000",
    "TENANT_MAX_OPEN_BATCHES": "100000",
}
LINE = {"custom_id": "a", "messages": [{"role": "user", "content": "Привет! Как дела?"}]}


@pytest.fixture(scope="module")
def api(module_api: Callable[..., ApiServer]) -> ApiServer:
    # Valid webhook cases name a loopback receiver (tests/support/fuzz_hooks.py); no
    # dispatcher runs here, so nothing is ever delivered to it.
    return module_api(**UNLIMITED, WEBHOOK_ALLOW_PRIVATE="true")


@pytest.fixture(scope="module")
def spec(api: ApiServer) -> dict[str, Any]:
    document: dict[str, Any] = httpx.get(api.url + "/openapi.json").json()
    return document


def _operations(spec: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            yield path, method.upper(), operation


def test_every_route_of_the_app_is_in_the_document(spec: dict[str, Any]) -> None:
    app = create_app(Settings())
    served = {
        (str(route.path).replace(":path", ""), method)
        for route in iter_route_contexts(app.routes)
        if route.include_in_schema
        for method in set(route.methods or ()) - {"HEAD"}
    }
    assert served
    documented = {(path, method) for path, method, _ in _operations(spec)}
    assert served == documented


def test_every_answer_is_typed_and_every_error_is_the_error_model(spec: dict[str, Any]) -> None:
    schemas = spec["components"]["schemas"]
    assert "HTTPValidationError" not in schemas and "ValidationError" not in schemas
    assert spec["components"]["securitySchemes"]["bearer"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "aivb-…",
        "description": "An API key made with `aivbatch keys create --tenant NAME`.",
    }
    for path, method, operation in _operations(spec):
        name = f"{method} {path}"
        responses = operation["responses"]
        ok = responses["200"]["content"]
        if "application/json" in ok:
            schema = ok["application/json"]["schema"]
            assert "$ref" in schema, f"{name} answers an untyped {schema}"
            answer = schemas[schema["$ref"].rsplit("/", 1)[1]]
            assert answer["type"] == "object" and answer["additionalProperties"] is False, name
        for status, response in responses.items():
            assert "x-request-id" in response["headers"], (name, status)
            if status != "200" and path != "/readyz":
                error = response["content"]["application/json"]["schema"]["$ref"]
                assert error == "#/components/schemas/ErrorResponse", (name, status)
        if path.startswith("/v1"):
            assert operation["security"] == [{"bearer": []}], name
            assert {"401", "429", "503"} <= set(responses), name
        if operation.get("parameters") or "requestBody" in operation:
            assert "400" in responses or path in ("/readyz", "/metrics"), name


class Contract:
    """Validates answers against the document."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        resource = Resource.from_contents(spec, default_specification=DRAFT202012)
        self.registry = Registry().with_resource("urn:openapi", resource)

    def check(self, path: str, method: str, response: httpx.Response) -> None:
        """The status is declared, and the body and headers are as declared for it."""
        operation = self.spec["paths"][path][method.lower()]
        declared = operation["responses"].get(str(response.status_code))
        assert declared is not None, (method, path, response.status_code, response.text)
        assert response.headers["x-request-id"].startswith("req_")
        for header, rule in declared.get("headers", {}).items():
            assert not rule.get("required") or header in response.headers, (path, header)
        kind = response.headers["content-type"].split(";")[0]
        assert kind in declared["content"], (path, kind, list(declared["content"]))
        if kind == "application/json":
            schema = {"$ref": "urn:openapi" + declared["content"][kind]["schema"]["$ref"]}
            validator = jsonschema.Draft202012Validator(schema, registry=self.registry)
            validator.validate(response.json())


def _fill(path: str, ids: dict[str, str]) -> str:
    for name, value in ids.items():
        path = path.replace("{" + name + "}", value)
    return path.replace("{", "").replace("}", "")  # unknown parameters: their own names


def _call(client: httpx.Client, method: str, path: str) -> httpx.Response:
    if method == "POST" and path == "/v1/batches":
        return client.post(path, json={"requests": [LINE], "metadata": {"k": "v"}})
    if method == "POST" and path == "/v1/files":
        upload = {"file": ("in.jsonl", io.BytesIO(json.dumps(LINE).encode()))}
        return client.post(path, data={"purpose": "batch"}, files=upload)
    return client.request(method, path, timeout=30)


def test_real_answers_of_every_route_match_the_document(
    api: ApiServer, spec: dict[str, Any], tenants: Tenants, shared_database_url: str
) -> None:
    contract = Contract(spec)
    client = api.client(tenants.key())
    batch = client.post("/v1/batches", json={"requests": [LINE]}).json()
    ended = client.post("/v1/batches", json={"requests": [LINE]}).json()
    upload = _call(client, "POST", "/v1/files").json()
    # An ended batch (cancelled, finalized as the dispatcher would): its streams end.
    db = Database.from_url(shared_database_url)
    try:
        with db.write() as session:
            cancel_batch(session, ended["id"], None, now=utcnow())
            finalize(session, now=utcnow())
    finally:
        db.dispose()
    openai.types.Batch.model_validate(client.get(f"/v1/batches/{ended['id']}").json(), strict=True)
    found = {"batch_id": batch["id"], "custom_id": "a", "file_id": upload["id"]}
    missing = {"batch_id": "batch_missing", "custom_id": "nobody", "file_id": "file-missing"}
    keyless = httpx.Client(base_url=api.url)
    try:
        for path, method, _ in _operations(spec):
            events = path.endswith("/events")
            ids = {**found, "batch_id": ended["id"]} if events else found
            contract.check(path, method, _call(client, method, _fill(path, ids)))
            contract.check(path, method, _call(client, method, _fill(path, missing)))
            if path.startswith("/v1"):
                contract.check(path, method, _call(keyless, method, _fill(path, ids)))
    finally:
        keyless.close()


def test_request_ids_are_in_the_answers_and_the_log(api: ApiServer, tenants: Tenants) -> None:
    client = api.client(tenants.key())
    answers = [
        client.get("/v1/batches"),
        client.get("/v1/batches/batch_nope"),
        httpx.get(api.url + "/v1/batches"),
        httpx.post(api.url + "/healthz", content=b"x" * 10_000),
        httpx.get(api.url + "/nowhere"),
    ]
    ids = [r.headers["x-request-id"] for r in answers]
    assert len(set(ids)) == len(ids) and all(i.startswith("req_") for i in ids)
    with openai.OpenAI(
        base_url=api.url + "/v1", api_key=client.headers["authorization"][7:], max_retries=0
    ) as sdk:
        listed_id = sdk.batches.list()._request_id
    assert listed_id is not None
    # The access line is written once the answer has gone out: wait for it, do not race it.
    wanted = [f"request_id={r}" for r in [*ids, listed_id]]
    wait_until(
        lambda: all(line in api.text() for line in wanted), timeout=10, what="every access line"
    )


def test_trace_and_other_unsupported_methods_answer_405_naming_what_is_allowed(
    api: ApiServer, tenants: Tenants
) -> None:
    client = api.client(tenants.key())
    for method, path, allowed in [
        ("TRACE", "/v1/batches", "GET, POST"),
        ("PUT", "/v1/batches", "GET, POST"),
        ("TRACE", "/v1/files/file-x", "DELETE, GET"),
        ("OPTIONS", "/v1/batches/batch_x/cancel", "POST"),
        ("TRACE", "/healthz", "GET"),
    ]:
        r = client.request(method, path)
        assert r.status_code == 405, (method, path, r.text)
        assert r.headers["allow"] == allowed and r.json()["error"]["code"] == "method_not_allowed"


def test_a_schema_driven_fuzz_run_finds_nothing(
    api: ApiServer, tenants: Tenants, tmp_path: Path
) -> None:
    """Every check of schemathesis (server errors, undocumented statuses, valid data refused,
    invalid data accepted, response schemas and headers, 405s), bounded in examples."""
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "SCHEMATHESIS_HOOKS": "tests.support.fuzz_hooks",
    }
    argv = [
        ST,
        "run",
        f"{api.url}/openapi.json",
        "--header",
        f"Authorization: Bearer {tenants.key()}",
        "--checks",
        "all",
        "--max-examples",
        FUZZ_EXAMPLES,
        "--seed",
        FUZZ_SEED,
        "--request-timeout",
        "20",
        "--no-color",
    ]
    done = subprocess.run(
        argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    report = done.stdout[-8000:] + done.stderr[-2000:]
    assert done.returncode == 0, report
    assert " passed" in report and "failed" not in report, report
    log = api.text()
    assert "Traceback" not in log and " 500 " not in log, log[-4000:]
