"""What the dispatcher decides: free capacity, and which queued jobs go next, fairly
between tenants and then between each tenant's batches."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, delete, func, or_, select, true, update
from sqlalchemy.orm import Session

from models.jobs import mark_dispatched_groups
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
    """The live workers: how many, the streams they hold in all, the fewest one holds, and
    the streams they keep beyond those for tenants under their fair share."""

    workers: int
    streams: int
    smallest: int
    reserve: int = 0


def reserve_of(capacity: int, share: float) -> int:
    """Streams a worker of ``capacity`` keeps beyond it for tenants under their fair share."""
    return math.ceil(capacity * share)


def live_capacity(
    session: Session, *, now: datetime, ttl: float, reserve_share: float = 0.0
) -> Capacity:
    """The workers seen within ``ttl`` seconds, and how many streams they can hold."""
    seen_since = now - timedelta(seconds=ttl)
    sizes = list(
        session.scalars(select(WorkerProcess.capacity).where(WorkerProcess.seen_at >= seen_since))
    )
    if not sizes:
        return Capacity(0, 0, 0)
    reserve = sum(reserve_of(size, reserve_share) for size in sizes)
    return Capacity(len(sizes), sum(sizes), min(sizes), reserve)


_READY = (Job.status == JobStatus.QUEUED) & Job.dispatch_token.is_(None)


def in_flight_by_upstream(session: Session) -> dict[str | None, tuple[int, int]]:
    """Per upstream: (jobs dispatched or running, of them dispatched but not yet claimed)."""
    dispatched = (Job.status == JobStatus.QUEUED) & Job.dispatch_token.is_not(None)
    rows = session.execute(
        select(Job.upstream, func.count(), func.count().filter(dispatched))
        .where(or_(Job.status == JobStatus.RUNNING, dispatched))
        .group_by(Job.upstream)
    )
    return {upstream: (int(total), int(waiting)) for upstream, total, waiting in rows}


def held_by_tenant(session: Session) -> dict[str, int]:
    """Jobs each tenant has handed to the broker or running: its share of the workers now."""
    rows = session.execute(
        select(Batch.tenant_id, func.count())
        .select_from(Job)
        .join(Batch, Batch.id == Job.batch_id)
        .where(
            or_(
                Job.status == JobStatus.RUNNING,
                (Job.status == JobStatus.QUEUED) & Job.dispatch_token.is_not(None),
            )
        )
        .group_by(Batch.tenant_id)
    )
    return {tenant: int(n) for tenant, n in rows}


def waiting_batches(session: Session, *, now: datetime) -> dict[str, list[str]]:
    """Batches with a job ready to go, by tenant, each tenant's served longest ago first."""
    ready = _READY & (Job.not_before <= now)
    rows = session.execute(
        select(Batch.tenant_id, Batch.id)
        .where(
            Batch.status == BatchStatus.IN_PROGRESS,
            select(Job.id).where(Job.batch_id == Batch.id, ready).exists(),
        )
        .order_by(Batch.last_dispatched_at.asc().nulls_first(), Batch.created_at)
        .limit(MAX_BATCHES_PER_PASS)
    )
    waiting: dict[str, list[str]] = {}
    for tenant, batch_id in rows:
        waiting.setdefault(tenant, []).append(batch_id)
    return waiting


def next_jobs(
    session: Session,
    limit: int,
    *,
    now: datetime,
    batch_ids: list[str] | None = None,
    allowance: dict[str, int] | None = None,
) -> list[int]:
    """Up to ``limit`` dispatchable job ids, shared round-robin between batches.

    Batches take turns in order of who was served longest ago, each taking an equal
    share, so a 50,000-request batch cannot starve a 5-request one submitted after it.
    ``batch_ids`` restricts the choice to those batches (one tenant's, say), in that order.
    ``allowance`` caps the jobs taken per upstream (and is spent as they are taken): a job
    waiting for a full upstream is skipped and takes no place from other upstreams' jobs.
    """
    if limit <= 0:
        return []
    ready = _READY & (Job.not_before <= now)
    if batch_ids is None:
        batch_ids = [b for ids in waiting_batches(session, now=now).values() for b in ids]
    chosen: list[int] = []
    after: dict[str, int] = {}  # the last position taken from each batch
    open_ = list(batch_ids)
    # Rounds of equal shares; a batch with fewer ready jobs than its share leaves the rest
    # to the others in the next round.
    while open_ and len(chosen) < limit:
        share = math.ceil((limit - len(chosen)) / len(open_))
        still = []
        for batch_id in open_:
            take = min(share, limit - len(chosen))
            if take <= 0:
                break
            query = select(Job.id, Job.position, Job.upstream).where(
                Job.batch_id == batch_id, ready, _open_upstreams(allowance)
            )
            if batch_id in after:
                query = query.where(Job.position > after[batch_id])
            rows = session.execute(query.order_by(Job.position).limit(take)).all()
            kept = _within(rows, allowance)
            chosen.extend(row.id for row in kept)
            if kept:
                after[batch_id] = kept[-1].position
            # Cut short by a spent allowance: the batch may hold other upstreams' jobs.
            if len(kept) == take or len(kept) < len(rows):
                still.append(batch_id)
        open_ = still
    if after:
        session.execute(
            update(Batch)
            .where(Batch.id.in_(list(after)))
            .values(last_dispatched_at=now)
            .execution_options(synchronize_session=False)
        )
    return chosen


def _open_upstreams(allowance: dict[str, int] | None) -> ColumnElement[bool]:
    """Jobs of upstreams whose allowance is not spent (all jobs without an allowance)."""
    spent = [name for name, left in (allowance or {}).items() if left <= 0]
    if not spent:
        return true()
    return or_(Job.upstream.is_(None), Job.upstream.not_in(spent))


def _within(rows: Sequence[Any], allowance: dict[str, int] | None) -> list[Any]:
    """The rows up to the first one whose upstream's allowance is spent; spends it."""
    if not allowance:
        return list(rows)
    kept = []
    for row in rows:
        if row.upstream in allowance:
            if allowance[row.upstream] <= 0:
                break
            allowance[row.upstream] -= 1
        kept.append(row)
    return kept


@dataclass(frozen=True, slots=True)
class Group:
    """Jobs handed to the broker under one token; ``reserve``: a worker starts them at once,
    in its reserve if its normal streams are full (a tenant under its fair share)."""

    token: str
    job_ids: list[int]
    tenant: str
    reserve: bool = False


@dataclass(slots=True)
class _Slots:
    normal: int
    reserve: int

    def take(self, n: int, *, reserve_too: bool) -> tuple[int, int]:
        """Up to ``n`` slots: normal ones first, then reserve ones if allowed."""
        normal = max(0, min(n, self.normal))
        self.normal -= normal
        extra = max(0, min(n - normal, self.reserve)) if reserve_too else 0
        self.reserve -= extra
        return normal, extra

    def give_back(self, unused: int, of_reserve: int) -> None:
        """Return slots a tenant could not fill (its reserve ones were taken last)."""
        back_reserve = min(unused, of_reserve)
        self.reserve += back_reserve
        self.normal += unused - back_reserve


def fill(
    session: Session,
    *,
    capacity: int,
    reserve: int,
    group: int,
    now: datetime,
    allowance: dict[str, int] | None = None,
) -> list[Group]:
    """Hand jobs to the broker: free worker streams shared fairly between tenants, then
    between each tenant's batches; returns the groups to send, each under a fresh token.

    Water-filling: every tenant with work waiting is first brought up to its fair share
    (``capacity`` split evenly between the tenants holding or wanting streams), lightest
    first; what is left goes to tenants that want more. Nobody preempts a running stream,
    so a tenant that filled the workers while alone holds them until its answers end; the
    workers' ``reserve`` (streams beyond ``capacity``) is therefore only for tenants under
    their fair share, and their groups are marked so a worker starts them before the
    backlog it holds, in the reserve if its normal streams are full. ``allowance`` caps the
    jobs handed out per upstream (worker/dispatch_caps.py).
    """
    waiting = waiting_batches(session, now=now)
    if not waiting:
        return []
    held = held_by_tenant(session)
    total = sum(held.values())
    slots = _Slots(
        normal=max(0, capacity - total),
        reserve=max(0, capacity + reserve - max(total, capacity)),
    )
    active = set(waiting) | {tenant for tenant, n in held.items() if n}
    share = math.ceil(capacity / len(active))
    order = sorted(waiting, key=lambda tenant: held.get(tenant, 0))
    groups: list[Group] = []

    def give(tenant: str, want: int, *, under_share: bool) -> None:
        normal, extra = slots.take(want, reserve_too=under_share)
        ids = next_jobs(
            session, normal + extra, now=now, batch_ids=waiting[tenant], allowance=allowance
        )
        slots.give_back(normal + extra - len(ids), extra)
        held[tenant] = held.get(tenant, 0) + len(ids)
        # Under its share beside other tenants, a tenant's groups jump the queue in the
        # worker: the groups waiting there are the others' backlog. Alone, it has no one to
        # jump, and it must leave the reserve free for whoever comes next.
        lane = under_share and len(active) > 1
        chunks = [ids[start : start + group] for start in range(0, len(ids), group)]
        for token, marked in mark_dispatched_groups(session, chunks, now=now):
            groups.append(Group(token, marked, tenant, lane))

    for tenant in order:
        give(tenant, share - held.get(tenant, 0), under_share=True)
    for tenant in order:
        if slots.normal <= 0:
            break
        give(tenant, slots.normal, under_share=False)
    return groups
