"""Counters kept with every job transition: a batch's jobs by state, its usage, file sizes.

Every place that changes a job's status tells a ``Tally`` what moved; ``Tally.apply`` adds it
to the batches' ``batch_counters`` rows with ``n = n + d`` in the same transaction, so the
counters are exactly the jobs' GROUP BY at every commit, and reading them costs one row per
batch however many jobs it holds. Rows are updated in batch id order, so two transactions
touching the same batches never wait on each other in a cycle.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterable
from typing import Any

from sqlalchemy import Table, func, select, update
from sqlalchemy.orm import Session

from models.lines import LINE_FIELDS, Ended, LineSource, line_size
from models.states import JobStatus
from models.tables import BatchCounters, Job
from models.usage import USAGE_COLUMNS, Usage

STATES = tuple(str(s) for s in JobStatus)
OUTPUT_BYTES = "output_bytes"
ERROR_BYTES = "error_bytes"
_table: Table = BatchCounters.__table__  # type: ignore[assignment]
_jobs: Table = Job.__table__  # type: ignore[assignment]
# What an UPDATE … RETURNING of jobs that end gives back, so their lines can be counted.
ENDED_COLUMNS = tuple(_jobs.c[name] for name in LINE_FIELDS)


class Tally:
    """What one transaction changes in the counters, by batch, until it is applied."""

    def __init__(self) -> None:
        self.by_batch: dict[str, Counter[str]] = {}

    def add(self, batch_id: str, column: str, delta: int) -> None:
        """Add ``delta`` to one counter of a batch."""
        if delta:
            self.by_batch.setdefault(batch_id, Counter())[column] += delta

    def move(self, batch_id: str, old: str, new: str, n: int = 1) -> None:
        """``n`` jobs of a batch went from state ``old`` to ``new``."""
        if old != new:
            self.add(batch_id, old, -n)
            self.add(batch_id, new, n)

    def usage(self, batch_id: str, before: Usage, after: Usage) -> None:
        """A job's usage changed from ``before`` to ``after``."""
        for name in USAGE_COLUMNS:
            self.add(batch_id, name, getattr(after, name) - getattr(before, name))

    def ended(self, job: LineSource) -> None:
        """A job reached a terminal state: its line joins its batch's output or error file."""
        column = OUTPUT_BYTES if job.status == JobStatus.SUCCEEDED else ERROR_BYTES
        self.add(job.batch_id, column, line_size(job))

    def apply(self, session: Session) -> None:
        """Add everything tallied to the counters, in the session's transaction."""
        for batch_id in sorted(self.by_batch):
            deltas = {k: v for k, v in self.by_batch[batch_id].items() if v}
            if deltas:
                # NULL stays NULL: a size not known yet is counted whole on its first read.
                values = {k: _table.c[k] + v for k, v in deltas.items()}
                session.execute(update(_table).where(_table.c.batch_id == batch_id).values(values))
        self.by_batch.clear()


def tally_ended(tally: Tally, rows: Iterable[Any], *, was: str) -> int:
    """Count jobs that an UPDATE … RETURNING ``ENDED_COLUMNS`` moved from ``was`` to an end."""
    n = 0
    for row in rows:
        ended = Ended(**row._mapping)
        tally.move(ended.batch_id, was, ended.status)
        tally.ended(ended)
        n += 1
    return n


def create(session: Session, batch_id: str, *, queued: int, chars_in: int) -> None:
    """The counters of a new batch: every job queued, nothing used but its input."""
    session.execute(_table.insert().values(batch_id=batch_id, queued=queued, chars_in=chars_in))


def _states_zero() -> dict[str, int]:
    return dict.fromkeys(STATES, 0)


def counts(session: Session, batch_ids: Collection[str]) -> dict[str, dict[str, int]]:
    """For each batch, how many of its jobs are in each state (every state present)."""
    return {batch_id: by_state for batch_id, (by_state, _) in read(session, batch_ids).items()}


def read(session: Session, batch_ids: Collection[str]) -> dict[str, tuple[dict[str, int], Usage]]:
    """For each batch, its jobs by state and its usage, in one query."""
    result = {bid: (_states_zero(), Usage()) for bid in batch_ids}
    if not batch_ids:
        return result
    columns = [_table.c[name] for name in (*STATES, *USAGE_COLUMNS)]
    rows = session.execute(
        select(_table.c.batch_id, *columns).where(_table.c.batch_id.in_(list(batch_ids)))
    )
    k = len(STATES)
    for batch_id, *values in rows:
        ns = [int(v) for v in values]
        result[batch_id] = (dict(zip(STATES, ns[:k], strict=True)), Usage(*ns[k:]))
    return result


def usage(session: Session, batch_ids: Collection[str]) -> dict[str, Usage]:
    """For each batch, what its jobs used so far."""
    return {batch_id: used for batch_id, (_, used) in read(session, batch_ids).items()}


def totals(session: Session) -> dict[str, int]:
    """Jobs in each state over every batch: a sum over batches, never over jobs."""
    row = session.execute(select(*(func.coalesce(func.sum(_table.c[s]), 0) for s in STATES))).one()
    return dict(zip(STATES, (int(n) for n in row), strict=True))


def file_bytes(session: Session, batch_id: str, *, errors: bool) -> int | None:
    """Size of a batch's output (or error) file; None when not known yet."""
    column = _table.c[ERROR_BYTES if errors else OUTPUT_BYTES]
    value = session.scalar(select(column).where(_table.c.batch_id == batch_id))
    return None if value is None else int(value)


def keep_file_bytes(session: Session, batch_id: str, size: int, *, errors: bool) -> None:
    """Keep a size counted by reading the file (once: only while it is not known)."""
    column = _table.c[ERROR_BYTES if errors else OUTPUT_BYTES]
    session.execute(
        update(_table)
        .where(_table.c.batch_id == batch_id, column.is_(None))
        .values({column.name: size})
    )
