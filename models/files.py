"""Uploaded files (the OpenAI Files API): batch input files, kept in SQL in pieces.

A file's content is a sequence of pieces (``file_parts``), written as the upload is read
and read back one piece at a time, so neither side ever holds a whole file.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from datetime import datetime

from sqlalchemy import delete, func, insert, select
from sqlalchemy.orm import Session

from models.errors import NotFound
from models.paging import newest_first
from models.tables import FilePart, StoredFile

# Pieces are at most this large: big enough that a file has few, small enough to hold.
PART_BYTES = 1024 * 1024


def create_file(
    session: Session,
    *,
    tenant_id: str,
    purpose: str,
    filename: str,
    pieces: Iterable[bytes],
    now: datetime,
) -> StoredFile:
    """Store an uploaded file from its content's pieces (each at most ``PART_BYTES``)."""
    row = StoredFile(
        id=f"file-{uuid.uuid4().hex}",
        tenant_id=tenant_id,
        purpose=purpose,
        filename=filename,
        size=0,
        created_at=now,
    )
    session.add(row)
    session.flush()
    size = 0
    for seq, piece in enumerate(pieces):
        session.execute(insert(FilePart).values(file_id=row.id, seq=seq, data=piece))
        size += len(piece)
    row.size = size
    return row


def get_file(session: Session, file_id: str, tenant_id: str) -> StoredFile:
    """One of the tenant's files (without its content)."""
    query = select(StoredFile).where(StoredFile.id == file_id, StoredFile.tenant_id == tenant_id)
    row = session.scalars(query).first()
    if row is None:
        raise NotFound(f"no file {file_id!r}")
    return row


def read_content(
    read: Callable[[], AbstractContextManager[Session]], file_id: str
) -> Iterator[bytes]:
    """A file's content, one piece per short read transaction."""
    seq = 0
    while True:
        with read() as session:
            piece = session.scalar(
                select(FilePart.data).where(FilePart.file_id == file_id, FilePart.seq == seq)
            )
        if piece is None:
            return
        yield piece
        seq += 1


def stored_bytes(session: Session, tenant_id: str) -> int:
    """How many bytes of uploaded files the tenant keeps."""
    total = session.scalar(
        select(func.coalesce(func.sum(StoredFile.size), 0)).where(StoredFile.tenant_id == tenant_id)
    )
    return int(total or 0)


def list_files(
    session: Session,
    tenant_id: str,
    *,
    limit: int,
    after: str | None = None,
    purpose: str | None = None,
) -> list[StoredFile]:
    """The tenant's files, newest first, ``limit`` at a time after the file ``after``."""
    query = select(StoredFile).where(StoredFile.tenant_id == tenant_id)
    if purpose:
        query = query.where(StoredFile.purpose == purpose)
    anchor = get_file(session, after, tenant_id) if after else None
    page = newest_first(query, StoredFile.created_at, StoredFile.id, anchor=anchor, limit=limit)
    return list(session.scalars(page))


def delete_file(session: Session, file_id: str, tenant_id: str) -> None:
    """Delete one of the tenant's files and its content."""
    get_file(session, file_id, tenant_id)
    session.execute(delete(FilePart).where(FilePart.file_id == file_id))
    session.execute(delete(StoredFile).where(StoredFile.id == file_id))
