"""Bring a database's schema up to date with the Alembic migrations shipped in the package."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

MIGRATIONS = Path(__file__).with_name("migrations")


def alembic_config(url: str) -> Config:
    """An Alembic config for ``url`` that needs no alembic.ini."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(url: str, revision: str = "head") -> None:
    """Apply every migration up to ``revision``."""
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str) -> None:
    """Revert migrations down to ``revision``."""
    command.downgrade(alembic_config(url), revision)


def is_current(engine: Engine) -> bool:
    """Whether the database answers and its schema is at the newest migration."""
    head = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision() == head
    except SQLAlchemyError:
        return False


def wait_until_current(
    engine: Engine,
    log: logging.Logger,
    *,
    stopped: Callable[[], bool] = lambda: False,
    interval: float = 1.0,
) -> bool:
    """Block until the schema is current; False if ``stopped`` said to give up first.

    Another process migrates it (the API on start, `aivbatch migrate`, compose's migrate
    step), so a worker or dispatcher started first waits instead of failing.
    """
    started = time.monotonic()
    while not is_current(engine):
        waited = time.monotonic() - started
        if int(waited) % 10 == 0:  # at first, then every ten seconds
            log.warning("waiting for the database schema (`aivbatch migrate`): %.0fs", waited)
        if stopped():
            return False
        time.sleep(interval)
    return True
