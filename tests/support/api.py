"""The HTTP API as a real uvicorn subprocess, and API keys for the tests' tenants.

``api_server(env) -> ApiServer`` starts ``aivbatch api`` (migrating, then uvicorn) with that
environment (build it with ``service_env`` or take a ``Stack``'s ``env``), waits until
``/healthz`` answers, and stops it by PID at teardown. ``ApiServer.client(key)`` is an
httpx client bound to it, sending the key as a bearer token.
"""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import redis

from cli.embedded import free_port
from cli.processes import end_process
from models.apikeys import create_key
from models.db import Database
from models.types import utcnow
from tests.support.stack import Stack, service_env

ROOT = Path(__file__).resolve().parents[2]
AIVBATCH = str(Path(sys.executable).with_name("aivbatch"))


@dataclass
class ApiServer:
    """One API process."""

    env: dict[str, str]
    log: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    clients: list[httpx.Client] = field(default_factory=list)

    @property
    def url(self) -> str:
        """Base URL, without a trailing slash."""
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30) -> ApiServer:
        """Start `aivbatch api` (again, on the same port) and wait for /healthz."""
        argv = [AIVBATCH, "api", "--host", "127.0.0.1", "--port", str(self.port)]
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                argv, cwd=ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the API exited ({self.proc.returncode}):\n{self.text()}")
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                time.sleep(0.05)
        raise RuntimeError(f"the API did not answer within {timeout}s:\n{self.text()}")

    def client(self, key: str | None = None, timeout: float = 30) -> httpx.Client:
        """A client of this API (closed at teardown), authenticated by ``key`` if given."""
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        client = httpx.Client(base_url=self.url, headers=headers, timeout=timeout)
        self.clients.append(client)
        return client

    def text(self) -> str:
        """What the process wrote."""
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self) -> None:
        """Stop the process by its PID (SIGTERM, then SIGKILL); ``start`` may follow."""
        for client in self.clients:
            client.close()
        self.clients.clear()
        proc, self.proc = self.proc, None
        if proc is not None:
            end_process(proc, timeout=15)


@dataclass
class ApiServers:
    """Starts API processes with their logs in one folder, and stops them all."""

    folder: Path
    made: list[ApiServer] = field(default_factory=list)

    def start(self, env: dict[str, str]) -> ApiServer:
        """A running API process with this environment."""
        server = ApiServer(env=env, log=self.folder / f"api-{len(self.made)}.log")
        self.made.append(server)
        return server.start()

    def stop_all(self) -> None:
        """Stop every process started here."""
        for server in self.made:
            server.stop()


@pytest.fixture
def api_server(tmp_path: Path) -> Iterator[Callable[[dict[str, str]], ApiServer]]:
    """Factory of running API processes; each is stopped at teardown."""
    servers = ApiServers(tmp_path)
    yield servers.start
    servers.stop_all()


@pytest.fixture(scope="module")
def module_api(
    shared_database_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[..., ApiServer]]:
    """Factory of API processes that serve a whole module, on each backend in turn:
    ``module_api(**settings)``. The module's tests keep apart by tenant."""
    prefix = f"aivtest-{uuid.uuid4().hex[:10]}"
    servers = ApiServers(tmp_path_factory.mktemp("api"))

    def make(**settings: str) -> ApiServer:
        return servers.start(
            service_env(
                database_url=shared_database_url,
                redis_url=redis_url,
                prefix=prefix,
                settings=settings,
            )
        )

    yield make
    servers.stop_all()
    client = redis.Redis.from_url(redis_url)
    for key in client.scan_iter(match=f"{prefix}:*", count=1000):
        client.delete(key)
    client.close()


@pytest.fixture(scope="module")
def shared_api(module_api: Callable[..., ApiServer]) -> ApiServer:
    """One API process with default settings per module and backend."""
    return module_api()


class Tenants:
    """Makes tenants with keys on one database."""

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url

    def key(self, name: str | None = None) -> str:
        """A key of a new tenant (or of ``name``)."""
        db = Database.from_url(self.database_url)
        try:
            return new_key(db, name or f"tenant-{uuid.uuid4().hex[:8]}")
        finally:
            db.dispose()


@pytest.fixture
def tenants(shared_database_url: str) -> Tenants:
    """Keys of fresh tenants on the module's database."""
    return Tenants(shared_database_url)


@pytest.fixture
def tenant_client(shared_api: ApiServer, tenants: Tenants) -> httpx.Client:
    """A client of the shared API with a key of a tenant of this test's own."""
    return shared_api.client(tenants.key())


def new_key(db: Database, tenant: str) -> str:
    """A fresh API key of ``tenant``."""
    with db.write() as session:
        return create_key(session, tenant, name="test", now=utcnow()).secret


@dataclass
class Running:
    """A pipeline (emulator, worker, dispatcher), the API over it, a client of one tenant."""

    pipeline: Stack
    server: ApiServer
    api: httpx.Client

    def logs(self) -> str:
        """What every process of the service wrote."""
        return self.pipeline.log_text() + self.pipeline.emulator.log() + self.server.text()


@pytest.fixture
def running(
    database: Database,
    pipeline: Callable[..., Stack],
    api_server: Callable[[dict[str, str]], ApiServer],
) -> Running:
    """A running service for end-to-end tests, on each backend in turn."""
    started = pipeline(delay_ms=40)
    server = api_server(started.env)
    return Running(started, server, server.client(new_key(database, "live")))
