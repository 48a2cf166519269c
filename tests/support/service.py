"""The whole service for a module's tests: the emulator, a worker, the dispatcher, the API.

``module_service(settings={...}, **emulator) -> Service`` starts every process against the
module's database (``shared_database_url``: each backend in turn) and a Redis prefix of the
module's own, and stops them (by PID) when the module ends. Tests keep apart by tenant.
``Service.tenant()`` is a client of the API with the key of a new tenant.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from models.db import Database
from tests.support.api import ApiServer, ApiServers, new_key
from tests.support.emulator import EmulatorServer
from tests.support.stack import Stack, service_env


@dataclass
class Service:
    """A running service and the database it keeps its record in."""

    stack: Stack
    api: ApiServer
    database_url: str

    def key(self, name: str | None = None) -> str:
        """An API key of a new tenant (or of ``name``)."""
        db = Database.from_url(self.database_url)
        try:
            return new_key(db, name or f"tenant-{uuid.uuid4().hex[:8]}")
        finally:
            db.dispose()

    def tenant(self, name: str | None = None) -> httpx.Client:
        """A client of the API acting for a new tenant (or for ``name``)."""
        return self.api.client(self.key(name))

    def logs(self) -> str:
        """What every process wrote, for failure messages."""
        return self.stack.log_text() + self.api.text()


@pytest.fixture(scope="module")
def module_service(
    shared_database_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[..., Service]]:
    """Factory of services that serve a whole module, on each backend in turn."""
    prefix = f"aivtest-{uuid.uuid4().hex[:10]}"
    folder = tmp_path_factory.mktemp("service")
    made: list[tuple[EmulatorServer, Stack]] = []
    servers = ApiServers(folder)

    def make(*, settings: dict[str, str] | None = None, **emulator: Any) -> Service:
        logs = Path(folder / f"stack-{len(made)}")
        logs.mkdir()
        upstream = EmulatorServer(emulator, log=logs / "emulator.log").start()
        env = service_env(
            database_url=shared_database_url,
            redis_url=redis_url,
            prefix=prefix,
            settings={"AIVVM_URL": upstream.url, **(settings or {})},
        )
        stack = Stack(env=env, emulator=upstream, logs=logs)
        made.append((upstream, stack))
        stack.start_worker()
        stack.start_dispatcher()
        return Service(stack, servers.start(env), shared_database_url)

    yield make
    servers.stop_all()
    for upstream, stack in made:
        stack.stop()
        upstream.stop()
    client = redis.Redis.from_url(redis_url)
    for key in client.scan_iter(match=f"{prefix}:*", count=1000):
        client.delete(key)
    client.close()
