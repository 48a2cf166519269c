"""Cursor pages, newest first: what both batch and file listings serve."""

from __future__ import annotations

from typing import Any, Protocol, TypeVar

from sqlalchemy import Select
from sqlalchemy.orm import InstrumentedAttribute

T = TypeVar("T", bound="Listed")


class Listed(Protocol):
    """A row with an id and a creation time."""

    id: Any
    created_at: Any


def newest_first(
    query: Select[T],
    created_at: InstrumentedAttribute[Any],
    id_: InstrumentedAttribute[Any],
    *,
    anchor: T | None,
    limit: int,
) -> Select[T]:
    """``limit`` rows of ``query``, newest first, after the row ``anchor`` (the cursor).

    Ties on the creation time are broken by id, so a page boundary never skips or repeats.
    """
    if anchor is not None:
        query = query.where(
            (created_at < anchor.created_at)
            | ((created_at == anchor.created_at) & (id_ < anchor.id))
        )
    return query.order_by(created_at.desc(), id_.desc()).limit(limit)
