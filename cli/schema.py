"""Schema migration for the commands that need it, without slowing down those that do not.

Alembic and SQLAlchemy take about 0.6 s to import; every `aivbatch` command imports every
command module, so the client commands (status, watch, …) would pay that on each call.
"""

from __future__ import annotations


def upgrade(url: str) -> None:
    """Bring the schema at ``url`` up to date (Alembic is imported only now)."""
    from models.migrate import upgrade as alembic_upgrade

    alembic_upgrade(url)


def shown_url(url: str) -> str:
    """A database URL fit to print: its password hidden."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)
