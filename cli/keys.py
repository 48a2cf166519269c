"""`aivbatch keys`: API keys, made and revoked straight in SQL (no API needed, nor running).

The SQL modules are imported inside the commands: see cli/schema.py for why.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from cli.common import err, fail, out
from cli.schema import upgrade
from models.errors import AivbatchError
from models.settings import get_settings

if TYPE_CHECKING:
    from models.db import Database

app = typer.Typer(
    help="API keys: each belongs to a tenant; only a hash of it is stored.",
    no_args_is_help=True,
)


@contextmanager
def database() -> Iterator[Database]:
    """The configured database, migrated first (so a fresh SQLite file works)."""
    from sqlalchemy.exc import SQLAlchemyError

    from models.db import Database

    url = get_settings().sql_url
    db: Database | None = None
    try:
        upgrade(url)
        db = Database.from_url(url)
        yield db
    except AivbatchError as exc:
        fail(str(exc))
    except SQLAlchemyError as exc:
        # The driver's first line says what went wrong (refused, no such database, …).
        fail(f"database: {str(getattr(exc, 'orig', None) or exc).splitlines()[0]}")
    finally:
        if db is not None:
            db.dispose()


def _when(at: datetime | None) -> str:
    return at.astimezone().strftime("%Y-%m-%d %H:%M") if at else "—"


@app.command()
def create(
    tenant: Annotated[str, typer.Option(help="The tenant the key acts for.")],
    name: Annotated[str, typer.Option(help="A label, to tell keys apart.")] = "",
) -> None:
    """Make a key; its secret is printed this once (on stdout, alone) and never again."""
    from models.apikeys import create_key
    from models.types import utcnow

    with database() as db, db.write() as session:
        made = create_key(session, tenant, name=name, now=utcnow())
        key_id, secret = made.row.id, made.secret
    typer.echo(secret)
    err.print(
        f"key {key_id} for tenant {escape(tenant.strip())}: the secret above is shown only"
        " now; send it as `Authorization: Bearer …` or set AIVBATCH_API_KEY"
    )


@app.command("list")
def list_(
    tenant: Annotated[str | None, typer.Option(help="Only this tenant's keys.")] = None,
) -> None:
    """List keys (never their secrets), oldest first."""
    from models.apikeys import list_keys

    with database() as db, db.read() as session:
        rows = list_keys(session, tenant)
    if not rows:
        err.print("no keys")
        return
    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in ("id", "tenant", "name", "prefix", "created", "last used", "revoked"):
        table.add_column(column, no_wrap=column in ("id", "tenant", "prefix"))
    for row in rows:
        table.add_row(
            row.id,
            row.tenant_id,
            row.name,
            f"{row.prefix}…",
            _when(row.created_at),
            _when(row.last_used_at),
            _when(row.revoked_at) if row.revoked_at else "no",
        )
    out.print(table)


@app.command()
def revoke(key_id: Annotated[str, typer.Argument(help="The key's id (key_…).")]) -> None:
    """Revoke a key; requests with it are refused from now on."""
    from models.apikeys import revoke_key
    from models.types import utcnow

    with database() as db, db.write() as session:
        row = revoke_key(session, key_id, now=utcnow())
        revoked_at = row.revoked_at
    out.print(f"revoked {key_id} (tenant {escape(row.tenant_id)}) at {_when(revoked_at)}")


def register(main: typer.Typer) -> None:
    """Add `keys` to the app."""
    main.add_typer(app, name="keys")
