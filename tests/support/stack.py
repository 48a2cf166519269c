"""A running pipeline for end-to-end tests: the emulator, real Celery workers, the dispatcher.

``stack(database_url=..., redis_url=..., prefix=..., workers=1, settings={...}, **emulator)``
starts every process against that SQL database and Redis, and returns a ``Stack``. Each
process is a real subprocess, stopped by its PID at teardown (SIGTERM, then SIGKILL).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from models.batches import progress
from models.db import Database
from models.states import ENDED_BATCH_STATES
from models.tables import WorkerProcess
from tests.support.emulator import EmulatorServer
from tests.support.wait import wait_until

ROOT = Path(__file__).resolve().parents[2]

# Short leases and timeouts so recovery happens within a test's patience.
FAST_SETTINGS = {
    "LEASE_SECONDS": "3",
    "DISPATCH_TIMEOUT": "5",
    "DISPATCH_INTERVAL": "0.1",
    "RETRY_BASE_DELAY": "0.1",
    "RETRY_MAX_DELAY": "1",
    "STALL_TIMEOUT": "2",
    "CONNECT_TIMEOUT": "2",
    "CHUNK_FLUSH_MS": "20",
}


UPSTREAM_KEY = "sk-test-upstream-secret"


def service_env(
    *, database_url: str, redis_url: str, prefix: str, settings: dict[str, str] | None = None
) -> dict[str, str]:
    """The environment of a service process: this one's, minus any AIVBATCH_*, plus these."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIVBATCH_")}
    env.update({f"AIVBATCH_{k}": v for k, v in {**FAST_SETTINGS, **(settings or {})}.items()})
    env.update(
        AIVBATCH_DATABASE_URL=database_url,
        AIVBATCH_REDIS_URL=redis_url,
        AIVBATCH_REDIS_PREFIX=prefix,
        AIVBATCH_AIVVM_KEY=UPSTREAM_KEY,
    )
    return env


def _spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    out = log.open("ab")
    try:
        return subprocess.Popen(
            [sys.executable, *args], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    finally:
        out.close()


def _end(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 20) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


@dataclass
class Stack:
    """The processes of one pipeline and the environment they share."""

    env: dict[str, str]
    emulator: EmulatorServer
    logs: Path
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    dispatcher: subprocess.Popen[bytes] | None = None

    def start_worker(self) -> subprocess.Popen[bytes]:
        """Start one more worker process."""
        proc = _spawn(["-m", "worker"], self.env, self.logs / f"worker-{len(self.workers)}.log")
        self.workers.append(proc)
        return proc

    def start_dispatcher(self) -> None:
        """Start the dispatcher process."""
        self.dispatcher = _spawn(
            ["-m", "worker.dispatcher"], self.env, self.logs / "dispatcher.log"
        )

    def kill_worker(self, index: int = 0) -> None:
        """SIGKILL a worker: no clean-up, no goodbye."""
        _end(self.workers[index], signal.SIGKILL)

    def kill_dispatcher(self) -> None:
        """SIGKILL the dispatcher (and the webhook deliveries it was making)."""
        if self.dispatcher is not None:
            _end(self.dispatcher, signal.SIGKILL)

    def stop(self) -> None:
        """Stop every process this stack started."""
        for proc in [*self.workers, *([self.dispatcher] if self.dispatcher else [])]:
            _end(proc)

    def log_text(self) -> str:
        """Everything the processes printed, for failure messages."""
        return "\n".join(
            f"== {p.name}\n{p.read_text()[-4000:]}" for p in sorted(self.logs.glob("*.log"))
        )

    def wait_ready(self, db: Database, timeout: float = 60) -> None:
        """Wait until every worker has announced itself (its heartbeat is in SQL)."""

        def live() -> bool:
            with db.read() as session:
                return len(list(session.scalars(select(WorkerProcess.id)))) >= len(self.workers)

        wait_until(live, timeout, "every worker ready", self.log_text)

    def wait_for(self, db: Database, batch_id: str, timeout: float = 60) -> dict[str, int]:
        """Wait until the batch is finalized; returns its counts by state."""

        def ended() -> dict[str, int] | None:
            with db.read() as session:
                p = progress(session, batch_id, None)
            return p.counts if p.batch.status in ENDED_BATCH_STATES else None

        return wait_until(ended, timeout, f"batch {batch_id} to finish", self.log_text, every=0.2)


@pytest.fixture
def stack(
    emulator: Callable[..., EmulatorServer], tmp_path: Path
) -> Iterator[Callable[..., Stack]]:
    """Factory of running pipelines; every process is stopped at teardown."""
    made: list[Stack] = []

    def make(
        *,
        database_url: str,
        redis_url: str,
        prefix: str,
        workers: int = 1,
        settings: dict[str, str] | None = None,
        **emulator_options: Any,
    ) -> Stack:
        upstream = emulator(**emulator_options)
        env = service_env(
            database_url=database_url,
            redis_url=redis_url,
            prefix=prefix,
            settings={"AIVVM_URL": upstream.url, **(settings or {})},
        )
        logs = tmp_path / f"stack-{len(made)}"
        logs.mkdir()
        running = Stack(env=env, emulator=upstream, logs=logs)
        made.append(running)
        for _ in range(workers):
            running.start_worker()
        running.start_dispatcher()
        return running

    yield make
    for running in made:
        running.stop()


@pytest.fixture
def pipeline(
    stack: Callable[..., Stack], database_url: str, redis_url: str, redis_prefix: str
) -> Callable[..., Stack]:
    """``stack`` on this test's database (each backend in turn), Redis and key prefix:
    ``pipeline(workers=1, settings={...}, **emulator)``."""

    def start(**options: Any) -> Stack:
        return stack(database_url=database_url, redis_url=redis_url, prefix=redis_prefix, **options)

    return start
