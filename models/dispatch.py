"""What the dispatcher reads: free capacity, and which queued jobs go next, fairly."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.orm import Session

from models.states import BatchStatus, JobStatus
from models.tables import Batch, Job, WorkerProcess

# A batch is offered at most this many batches' worth of turns per pass; more batches wait.
MAX_BATCHES_PER_PASS = 64


def in_flight(session: Session) -> int:
    """Jobs handed to the broker or running: what the workers already hold or will."""
    return int(
        session.scalar(
            select(func.count())
            .select_from(Job)
            .where(
                or_(
                    Job.status == JobStatus.RUNNING,
                    (Job.status == JobStatus.QUEUED) & Job.dispatch_token.is_not(None),
                )
            )
        )
        or 0
    )


def heartbeat(
    session: Session, worker_id: str, *, hostname: str, pid: int, capacity: int, now: datetime
) -> None:
    """Record that a worker process is alive and how many streams it can hold."""
    updated = session.execute(
        update(WorkerProcess)
        .where(WorkerProcess.id == worker_id)
        .values(seen_at=now, capacity=capacity)
        .execution_options(synchronize_session=False)
    )
    if getattr(updated, "rowcount", 0) == 0:
        session.add(
            WorkerProcess(
                id=worker_id,
                hostname=hostname,
                pid=pid,
                capacity=capacity,
                started_at=now,
                seen_at=now,
            )
        )


def forget_worker(session: Session, worker_id: str) -> None:
    """Remove a worker that is stopping."""
    session.execute(delete(WorkerProcess).where(WorkerProcess.id == worker_id))


@dataclass(frozen=True, slots=True)
class Capacity:
    """The live workers: how many, the streams they hold in all, the fewest one holds."""

    workers: int
    streams: int
    smallest: int


def live_capacity(session: Session, *, now: datetime, ttl: float) -> Capacity:
    """The workers seen within ``ttl`` seconds, and how many streams they can hold."""
    seen_since = now - timedelta(seconds=ttl)
    workers, streams, smallest = session.execute(
        select(
            func.count(),
            func.coalesce(func.sum(WorkerProcess.capacity), 0),
            func.coalesce(func.min(WorkerProcess.capacity), 0),
        ).where(WorkerProcess.seen_at >= seen_since)
    ).one()
    return Capacity(int(workers), int(streams), int(smallest))


def next_jobs(session: Session, limit: int, *, now: datetime) -> list[int]:
    """Up to ``limit`` dispatchable job ids, shared round-robin between batches.

    Batches take turns in order of who was served longest ago, each taking an equal
    share, so a 50,000-request batch cannot starve a 5-request one submitted after it.
    """
    if limit <= 0:
        return []
    ready = (
        (Job.status == JobStatus.QUEUED) & Job.dispatch_token.is_(None) & (Job.not_before <= now)
    )
    batch_ids = list(
        session.scalars(
            select(Batch.id)
            .where(
                Batch.status == BatchStatus.IN_PROGRESS,
                select(Job.id).where(Job.batch_id == Batch.id, ready).exists(),
            )
            .order_by(Batch.last_dispatched_at.asc().nulls_first(), Batch.created_at)
            .limit(MAX_BATCHES_PER_PASS)
        )
    )
    if not batch_ids:
        return []
    share = math.ceil(limit / len(batch_ids))
    chosen: list[int] = []
    for batch_id in batch_ids:
        take = min(share, limit - len(chosen))
        if take <= 0:
            break
        chosen.extend(
            session.scalars(
                select(Job.id)
                .where(Job.batch_id == batch_id, ready)
                .order_by(Job.position)
                .limit(take)
            )
        )
        session.execute(
            update(Batch)
            .where(Batch.id == batch_id)
            .values(last_dispatched_at=now)
            .execution_options(synchronize_session=False)
        )
    return chosen
