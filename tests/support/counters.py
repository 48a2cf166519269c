"""The counters' contract: every counter equals what a GROUP BY over the jobs (and the
rendered output and error files) says, exactly, for every batch."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from models.counters import ERROR_BYTES, OUTPUT_BYTES, STATES
from models.db import Database
from models.lines import line_size
from models.states import JobStatus
from models.tables import Batch, BatchCounters, Job
from models.usage import USAGE_COLUMNS

COLUMNS = (*STATES, *USAGE_COLUMNS, OUTPUT_BYTES, ERROR_BYTES)


def counted(db: Database) -> dict[str, dict[str, Any]]:
    """Every batch's counters as kept."""
    with db.read() as session:
        rows = session.execute(select(BatchCounters))
        return {c.batch_id: {k: getattr(c, k) for k in COLUMNS} for (c,) in rows}


def recounted(db: Database) -> dict[str, dict[str, Any]]:
    """Every batch's counters as the jobs say: GROUP BY, and each file rendered."""
    with db.read() as session:
        result: dict[str, dict[str, Any]] = {
            batch_id: dict.fromkeys(COLUMNS, 0) for batch_id in session.scalars(select(Batch.id))
        }
        for batch_id, status, n in session.execute(
            select(Job.batch_id, Job.status, func.count()).group_by(Job.batch_id, Job.status)
        ):
            result[batch_id][status] = n
        sums = [func.sum(getattr(Job, name)) for name in USAGE_COLUMNS]
        for batch_id, *values in session.execute(
            select(Job.batch_id, *sums).group_by(Job.batch_id)
        ):
            result[batch_id].update(zip(USAGE_COLUMNS, (int(v) for v in values), strict=True))
        ended = Job.status.in_([s for s in STATES if s not in ("queued", "running")])
        for job in session.scalars(select(Job).where(ended)):
            column = OUTPUT_BYTES if job.status == JobStatus.SUCCEEDED else ERROR_BYTES
            result[job.batch_id][column] += line_size(job)
    return result


def assert_exact(db: Database) -> None:
    """Fail, naming each difference, unless every counter equals its recount."""
    kept, truth = counted(db), recounted(db)
    assert kept.keys() == truth.keys(), "batches without counters (or counters without one)"
    drift = {
        (batch_id, column): (kept[batch_id][column], truth[batch_id][column])
        for batch_id in truth
        for column in COLUMNS
        if kept[batch_id][column] != truth[batch_id][column]
    }
    assert not drift, f"counters drifted (kept, recounted): {drift}"
