"""API keys: each belongs to a tenant; only a SHA-256 of the key is stored."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from models.errors import InvalidInput, NotFound
from models.tables import ApiKey

KEY_PREFIX = "aivb-"
# How stale ``last_used_at`` may get: refreshing it on every request would make every
# read a write (and SQLite has one writer).
LAST_USED_RESOLUTION = timedelta(minutes=1)


@dataclass(frozen=True, slots=True)
class NewKey:
    """A key just made: the only moment its secret is known."""

    row: ApiKey
    secret: str


def hash_key(secret: str) -> str:
    """The stored form of a key."""
    return hashlib.sha256(secret.encode()).hexdigest()


def create_key(session: Session, tenant_id: str, *, name: str = "", now: datetime) -> NewKey:
    """Make a key for ``tenant_id``; the secret is returned once and never stored."""
    tenant_id = tenant_id.strip()
    if not tenant_id or len(tenant_id) > 64:
        raise InvalidInput("tenant: must be 1 to 64 characters")
    secret = KEY_PREFIX + secrets.token_urlsafe(32)
    row = ApiKey(
        id=f"key_{uuid.uuid4().hex[:16]}",
        tenant_id=tenant_id,
        name=name,
        key_hash=hash_key(secret),
        prefix=secret[: len(KEY_PREFIX) + 4],
        created_at=now,
    )
    session.add(row)
    session.flush()
    return NewKey(row, secret)


def list_keys(session: Session, tenant_id: str | None = None) -> list[ApiKey]:
    """Every key (of one tenant, if named), oldest first."""
    query = select(ApiKey).order_by(ApiKey.created_at, ApiKey.id)
    if tenant_id is not None:
        query = query.where(ApiKey.tenant_id == tenant_id)
    return list(session.scalars(query))


def revoke_key(session: Session, key_id: str, *, now: datetime) -> ApiKey:
    """Revoke a key by its id; revoking twice keeps the first time."""
    row = session.get(ApiKey, key_id)
    if row is None:
        raise NotFound(f"no key {key_id!r}")
    if row.revoked_at is None:
        row.revoked_at = now
    return row


def authenticate(session: Session, secret: str) -> ApiKey | None:
    """The live key matching ``secret``, or None."""
    row = session.scalars(select(ApiKey).where(ApiKey.key_hash == hash_key(secret))).first()
    if row is None or row.revoked_at is not None:
        return None
    return row


def is_live(session: Session, key_id: str) -> bool:
    """Whether the key exists and is not revoked."""
    revoked = session.execute(select(ApiKey.revoked_at).where(ApiKey.id == key_id)).first()
    return revoked is not None and revoked[0] is None


def touch_due(key: ApiKey, *, now: datetime) -> bool:
    """Whether the key's ``last_used_at`` is older than ``LAST_USED_RESOLUTION``."""
    return key.last_used_at is None or now - key.last_used_at >= LAST_USED_RESOLUTION


def touch(session: Session, key_id: str, *, now: datetime) -> None:
    """Record that a key was used."""
    session.execute(
        update(ApiKey)
        .where(ApiKey.id == key_id)
        .values(last_used_at=now)
        .execution_options(synchronize_session=False)
    )
