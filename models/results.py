"""Reading jobs back: one by custom_id, or every finished one a page at a time."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from models.batches import get_batch
from models.errors import NotFound
from models.states import TERMINAL_JOB_STATES, JobStatus
from models.tables import Job

Order = Literal["input", "custom_id"]
PAGE = 500


def get_job(session: Session, batch_id: str, custom_id: str, tenant_id: str | None) -> Job:
    """One job of a batch of this tenant."""
    get_batch(session, batch_id, tenant_id)
    job = session.scalars(
        select(Job).where(Job.batch_id == batch_id, Job.custom_id == custom_id)
    ).first()
    if job is None:
        raise NotFound(f"no request with custom_id {custom_id!r} in batch {batch_id!r}")
    return job


def finished_jobs(
    read: Callable[[], AbstractContextManager[Session]],
    batch_id: str,
    *,
    order: Order = "input",
    states: tuple[JobStatus, ...] = TERMINAL_JOB_STATES,
    page: int = PAGE,
) -> Iterator[Job]:
    """The batch's jobs in ``states``, ``page`` rows per short read transaction.

    Keyset paging (position, or custom_id) keeps memory flat for any batch size and holds
    no transaction open while the caller is slow to take the rows.
    """
    key = Job.position if order == "input" else Job.custom_id
    after: int | str | None = None
    while True:
        query = (
            select(Job)
            .where(Job.batch_id == batch_id, Job.status.in_([str(s) for s in states]))
            .order_by(key)
            .limit(page)
        )
        if after is not None:
            query = query.where(key > after)
        with read() as session:
            rows = list(session.scalars(query))
        yield from rows
        if len(rows) < page:
            return
        last = rows[-1]
        after = last.position if order == "input" else last.custom_id
