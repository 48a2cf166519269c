"""Reading jobs back: one by custom_id, every finished one, a filtered page, errors by code."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Literal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from models.batches import get_batch
from models.errors import NotFound
from models.states import TERMINAL_JOB_STATES, UNSUCCESSFUL_JOB_STATES, JobStatus
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


@dataclass(frozen=True, slots=True)
class JobPage:
    """One page of a batch's jobs in input order, and whether more follow."""

    jobs: list[Job]
    has_more: bool


def list_jobs(
    session: Session,
    batch_id: str,
    tenant_id: str | None,
    *,
    status: str | None = None,
    search: str | None = None,
    after: str | None = None,
    limit: int = 50,
) -> JobPage:
    """A batch's jobs in input order, filtered by state and by a ``custom_id`` substring.

    ``after`` is the ``custom_id`` of the last job of the page before (the cursor).
    """
    get_batch(session, batch_id, tenant_id)
    query = select(Job).where(Job.batch_id == batch_id)
    if status:
        query = query.where(Job.status == status)
    if search:
        # lower() on both sides: SQLite's LIKE ignores case, PostgreSQL's does not.
        query = query.where(func.lower(Job.custom_id).contains(search.lower(), autoescape=True))
    if after is not None:
        anchor = session.scalar(
            select(Job.position).where(Job.batch_id == batch_id, Job.custom_id == after)
        )
        if anchor is None:
            raise NotFound(f"after: no request with custom_id {after!r} in this batch")
        query = query.where(Job.position > anchor)
    rows = list(session.scalars(query.order_by(Job.position).limit(limit + 1)))
    return JobPage(rows[:limit], has_more=len(rows) > limit)


@dataclass(frozen=True, slots=True)
class ErrorGroup:
    """The requests of a batch that ended with one error code."""

    code: str
    count: int
    message: str
    custom_ids: list[str]


def errors_by_code(
    session: Session, batch_id: str, tenant_id: str | None, *, examples: int = 5
) -> list[ErrorGroup]:
    """The batch's unsuccessful requests grouped by error code, the largest group first."""
    get_batch(session, batch_id, tenant_id)
    unsuccessful = (
        Job.batch_id == batch_id,
        Job.status.in_([str(s) for s in UNSUCCESSFUL_JOB_STATES]),
    )
    code = func.coalesce(Job.error_code, "unknown")
    counts = session.execute(
        select(code, func.count())
        .where(*unsuccessful)
        .group_by(code)
        .order_by(func.count().desc(), code)
    ).all()
    groups: list[ErrorGroup] = []
    for name, count in counts:
        sample = session.execute(
            select(Job.custom_id, Job.error_message)
            .where(*unsuccessful, code == name)
            .order_by(Job.position)
            .limit(examples)
        ).all()
        groups.append(
            ErrorGroup(
                code=name,
                count=int(count),
                message=(sample[0][1] or "") if sample else "",
                custom_ids=[row[0] for row in sample],
            )
        )
    return groups
