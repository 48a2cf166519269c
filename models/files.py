"""Uploaded files (the OpenAI Files API): batch input files, kept whole in SQL."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session, defer

from models.errors import NotFound
from models.paging import newest_first
from models.tables import StoredFile


def create_file(
    session: Session,
    *,
    tenant_id: str,
    purpose: str,
    filename: str,
    content: bytes,
    now: datetime,
) -> StoredFile:
    """Store an uploaded file."""
    row = StoredFile(
        id=f"file-{uuid.uuid4().hex}",
        tenant_id=tenant_id,
        purpose=purpose,
        filename=filename,
        size=len(content),
        content=content,
        created_at=now,
    )
    session.add(row)
    session.flush()
    return row


def get_file(
    session: Session, file_id: str, tenant_id: str, *, with_content: bool = False
) -> StoredFile:
    """One of the tenant's files (its content is loaded only when asked for)."""
    query = select(StoredFile).where(StoredFile.id == file_id, StoredFile.tenant_id == tenant_id)
    if not with_content:
        query = query.options(defer(StoredFile.content))
    row = session.scalars(query).first()
    if row is None:
        raise NotFound(f"no file {file_id!r}")
    return row


def list_files(
    session: Session,
    tenant_id: str,
    *,
    limit: int,
    after: str | None = None,
    purpose: str | None = None,
) -> list[StoredFile]:
    """The tenant's files, newest first, ``limit`` at a time after the file ``after``."""
    query = (
        select(StoredFile)
        .where(StoredFile.tenant_id == tenant_id)
        .options(defer(StoredFile.content))
    )
    if purpose:
        query = query.where(StoredFile.purpose == purpose)
    anchor = get_file(session, after, tenant_id) if after else None
    page = newest_first(query, StoredFile.created_at, StoredFile.id, anchor=anchor, limit=limit)
    return list(session.scalars(page))


def delete_file(session: Session, file_id: str, tenant_id: str) -> None:
    """Delete one of the tenant's files."""
    get_file(session, file_id, tenant_id)
    session.execute(delete(StoredFile).where(StoredFile.id == file_id))
