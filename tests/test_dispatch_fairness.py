"""Fairness of dispatch: tenants first, then each tenant's batches (models/dispatch.py)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import pytest
from sqlalchemy import select

from models import batches, dispatch
from models.db import Database
from models.states import JobStatus
from models.tables import Batch, Job
from models.types import utcnow
from tests.support.pipeline import jobs_of, submit
from tests.support.stack import Stack
from tests.support.wait import wait_until


def _fill(db: Database, *, capacity: int, reserve: int, group: int = 4) -> list[dispatch.Group]:
    with db.write() as s:
        return dispatch.fill(s, capacity=capacity, reserve=reserve, group=group, now=utcnow())


def _tenant_of(db: Database) -> dict[int, str]:
    with db.read() as s:
        rows = s.execute(select(Job.id, Batch.tenant_id).join(Batch)).all()
        return dict(rows)


def _granted(db: Database, groups: list[dispatch.Group], *, reserve: bool) -> Counter[str]:
    tenants = _tenant_of(db)
    return Counter(tenants[i] for g in groups if g.reserve == reserve for i in g.job_ids)


def test_each_tenant_first_gets_its_share_then_the_rest_goes_to_who_wants_more(
    database: Database,
) -> None:
    submit(database, 100, tenant="a")
    submit(database, 5, tenant="b")
    groups = _fill(database, capacity=20, reserve=2)
    # Up to its share (10) each tenant jumps the workers' queue; beyond it, it waits.
    assert _granted(database, groups, reserve=True) == {"a": 10, "b": 5}
    assert _granted(database, groups, reserve=False) == {"a": 5}
    assert all(len(g.job_ids) <= 4 for g in groups)


def test_a_tenant_alone_fills_the_workers_but_never_the_reserve(database: Database) -> None:
    submit(database, 100, tenant="a")
    first = _fill(database, capacity=20, reserve=5)
    assert _granted(database, first, reserve=False) == {"a": 20}
    assert _fill(database, capacity=20, reserve=5) == []


def test_a_newcomer_starts_in_the_reserve_while_another_tenant_holds_everything(
    database: Database,
) -> None:
    submit(database, 100, tenant="a")
    _fill(database, capacity=20, reserve=6)
    submit(database, 10, tenant="b")
    groups = _fill(database, capacity=20, reserve=6)
    assert _granted(database, groups, reserve=True) == {"b": 6}
    assert _granted(database, groups, reserve=False) == {}


def test_within_a_tenant_batches_take_turns(database: Database) -> None:
    big = submit(database, 50, tenant="a")
    small = submit(database, 3, tenant="a")
    submit(database, 50, tenant="b")
    _fill(database, capacity=20, reserve=0)
    dispatched = Counter(
        job.batch_id
        for batch_id in (big, small)
        for job in jobs_of(database, batch_id)
        if job.dispatch_token is not None
    )
    assert dispatched[small] == 3 and dispatched[big] == 7


@pytest.mark.slow
def test_a_small_batch_runs_at_once_while_another_tenant_holds_every_stream(
    database: Database, pipeline: Callable[..., Stack]
) -> None:
    # Tenant a's answers take a minute; with every normal stream held by them, tenant b's
    # batch must still run at once, in the reserve, and end before any of a's answers.
    running = pipeline(
        settings={"WORKER_STREAMS": "10", "FAIR_RESERVE": "0.5", "DISPATCH_GROUP": "5"},
        delay_ms=20,
    )
    # Chunks a second apart: slow, but never silent long enough to count as a stall. Fewer
    # than the workers take with their backlog (10 + 2 groups of 5), so the dispatcher has
    # normal room left for b, but the worker's normal streams are full of a's.
    slow = submit(database, 18, tenant="a", options={"chunks": 60, "delay_ms": 1000})
    wait_until(
        lambda: sum(j.status == JobStatus.RUNNING for j in jobs_of(database, slow)) == 10,
        30,
        "tenant a holds every normal stream",
        running.log_text,
    )
    quick = submit(database, 5, tenant="b")
    counts = running.wait_for(database, quick, timeout=30)
    assert counts["succeeded"] == 5, running.log_text()
    assert all(j.finished_at is None for j in jobs_of(database, slow))
    with database.write() as s:  # so the workers stop at once rather than after a minute
        batches.cancel_batch(s, slow, None, now=utcnow())
