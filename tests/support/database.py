"""Migrated databases for the tests: a fresh SQLite file, or the shared PostgreSQL emptied."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from sqlalchemy import create_engine, make_url, text

from models.db import Database
from models.migrate import upgrade
from models.tables import Base

BACKENDS = ["sqlite", "postgres"]


def _own_database(url: str) -> str:
    """The database of this test process: under pytest-xdist each worker gets one of its
    own beside the configured one (``test`` → ``test_gw0``), since every test empties it."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if not worker:
        return url
    parsed = make_url(url)
    name = f"{parsed.database}_{worker}"
    admin = parsed.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is None:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return parsed.set(database=name).render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def migrated_postgres(postgres_url: str) -> str:
    """The test PostgreSQL with its public schema rebuilt by the migrations, once a session."""
    postgres_url = _own_database(postgres_url)
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
