"""A worker asked to stop stops within its grace period, whatever else is down."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable

import pytest

from cli.embedded import EmbeddedRedis
from models.db import Database
from models.states import JobStatus
from tests.support.pipeline import jobs_of, submit
from tests.support.stack import Stack
from tests.support.wait import wait_until
from worker.runtime import SHUTDOWN_GRACE_SECONDS

pytestmark = pytest.mark.slow

# The grace is the whole stop; a second or two more for the interpreter to exit.
STOP_BUDGET = SHUTDOWN_GRACE_SECONDS + 2


def _exit_seconds(proc: subprocess.Popen[bytes]) -> float:
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(STOP_BUDGET + 30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)
    return time.monotonic() - started


def test_a_worker_stops_in_time_with_redis_frozen_and_hands_its_jobs_back(
    database: Database, stack: Callable[..., Stack], database_url: str
) -> None:
    server = EmbeddedRedis.start()
    try:
        running = stack(
            database_url=database_url,
            redis_url=server.url,
            prefix="aivstop",
            settings={"WORKER_STREAMS": "10"},
        )
        # Answers of a minute, a chunk a second (never a stall): still running at the stop.
        batch_id = submit(database, 5, options={"chunks": 60, "delay_ms": 1000})
        wait_until(
            lambda: all(j.status == JobStatus.RUNNING for j in jobs_of(database, batch_id)),
            30,
            "every job running",
            running.log_text,
        )
        # Frozen, as in a partition: connections neither answer nor close, the worst case
        # (a killed server refuses connections at once).
        server.proc.send_signal(signal.SIGSTOP)
        # Stopped first, so any job found queued below was handed back by the worker, not
        # requeued by the dispatcher when its lease lapsed.
        assert running.dispatcher is not None
        running.dispatcher.terminate()
        running.dispatcher.wait(30)
        took = _exit_seconds(running.workers[0])
    finally:
        server.proc.send_signal(signal.SIGCONT)
        server.stop()
    assert took <= STOP_BUDGET, f"{took:.1f}s\n{running.log_text()}"
    assert running.workers[0].returncode == 0, running.log_text()
    # Handed back to the queue at once, not left to wait for their leases to lapse.
    assert {j.status for j in jobs_of(database, batch_id)} == {JobStatus.QUEUED}
