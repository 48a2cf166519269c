"""Migrated databases for the tests: a fresh SQLite file, or the shared PostgreSQL emptied."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from models.db import Database
from models.migrate import upgrade
from models.tables import Base

BACKENDS = ["sqlite", "postgres"]


@pytest.fixture(scope="session")
def migrated_postgres(postgres_url: str) -> str:
    """The test PostgreSQL with its public schema rebuilt by the migrations, once a session."""
    engine = create_engine(postgres_url)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()
    upgrade(postgres_url)
    return postgres_url


def _empty_postgres(url: str) -> None:
    engine = create_engine(url)
    tables = ", ".join(t.name for t in Base.metadata.sorted_tables)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    engine.dispose()


def _empty_database(request: pytest.FixtureRequest, folder: Path) -> str:
    """A new migrated SQLite file in ``folder``, or the test PostgreSQL emptied."""
    if request.param == "sqlite":
        url = f"sqlite:///{folder / 'aivbatch.db'}"
        upgrade(url)
        return url
    url = str(request.getfixturevalue("migrated_postgres"))
    _empty_postgres(url)
    return url


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """URL of an empty, migrated database of each backend in turn."""
    return _empty_database(request, tmp_path)


@pytest.fixture(scope="module", params=BACKENDS)
def shared_database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> str:
    """A migrated database of each backend, shared by a module's tests (they keep apart
    by tenant, so one API process can serve them all)."""
    return _empty_database(request, tmp_path_factory.mktemp("db"))


@pytest.fixture
def database(database_url: str) -> Iterator[Database]:
    """A Database on an empty, migrated backend (SQLite and PostgreSQL in turn)."""
    db = Database.from_url(database_url)
    yield db
    db.dispose()
