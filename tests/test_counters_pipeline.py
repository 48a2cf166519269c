"""Counters stay exact through a faulted run: concurrent workers, upstream faults that are
retried, a refusal, a cancel, an expiry and a worker killed mid-batch. Afterwards every
counter equals a GROUP BY over the jobs, and the API's figures equal what it renders."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from models.batches import cancel_batch
from models.db import Database
from models.types import utcnow
from tests.support.api import ApiServer, new_key
from tests.support.counters import assert_exact, recounted
from tests.support.pipeline import jobs_of, submit
from tests.support.stack import Stack
from tests.support.wait import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def _count(db: Database, batch_id: str, status: str) -> int:
    return sum(1 for j in jobs_of(db, batch_id) if j.status == status)


def _open(db: Database, batch_id: str) -> int:
    return sum(1 for j in jobs_of(db, batch_id) if j.status in ("queued", "running"))


def _file_sizes_match(api: httpx.Client, batch: dict[str, object]) -> int:
    """Each file's ``bytes`` equals its rendered content; returns how many files there were."""
    files = [batch[k] for k in ("output_file_id", "error_file_id") if batch[k]]
    for file_id in files:
        described = api.get(f"/v1/files/{file_id}").json()
        content = api.get(f"/v1/files/{file_id}/content").content
        assert described["bytes"] == len(content) > 0, file_id
    return len(files)


def test_counters_equal_a_recount_after_a_faulted_run(
    database: Database,
    pipeline: Callable[..., Stack],
    api_server: Callable[[dict[str, str]], ApiServer],
) -> None:
    running = pipeline(
        workers=2,
        settings={"WORKER_STREAMS": "20"},
        delay_ms=40,
        ttfb_ms=10,
        fault_rate=0.25,
        faults="429,500,reset",
        fault_times=1,
        retry_after=0,
    )
    running.wait_ready(database)
    refused = {i: {"fault": "403"} for i in range(0, 150, 30)}
    main = submit(database, 150, per_job=refused)
    # Answers far longer than the window: running ones are stopped, queued ones ended.
    late = submit(database, 30, window="8s", options={"delay_ms": 1000, "chunks": 30})
    doomed = submit(database, 60, options={"delay_ms": 200})

    wait_until(lambda: _count(database, doomed, "running") > 0, 60, "the doomed batch running")
    with database.write() as session:
        cancel_batch(session, doomed, "t1", now=utcnow())
    wait_until(lambda: _count(database, main, "running") >= 5, 60, "a wave of the main batch")
    running.kill_worker(0)
    running.start_worker()

    # Once no job is open nothing changes any more: the counters must equal the recount
    # (a counter that drifted would also keep its batch from ending).
    wait_until(
        lambda: not any(_open(database, b) for b in (main, late, doomed)),
        90,
        "every job to end",
        running.log_text,
        every=0.5,
    )
    assert_exact(database)
    for batch_id in (main, late, doomed):
        running.wait_for(database, batch_id, timeout=30)

    truth = recounted(database)
    assert truth[main]["failed"] >= len(refused) and truth[main]["succeeded"] > 0
    assert truth[late]["expired"] == 30
    assert truth[doomed]["cancelled"] > 0
    retried = [j for j in jobs_of(database, main) if j.attempt > 1]
    assert retried, "no job was retried"

    server = api_server(running.env)
    api = server.client(new_key(database, "t1"))
    files = 0
    for batch_id in (main, late, doomed):
        batch = api.get(f"/v1/batches/{batch_id}").json()
        assert batch["counts"] == {k: truth[batch_id][k] for k in batch["counts"]}
        assert batch["usage"]["output_characters"] == truth[batch_id]["chars_out"]
        files += _file_sizes_match(api, batch)
    assert files >= 4
    metrics = api.get("/metrics").text
    gauges = {
        sample.labels["state"]: sample.value
        for family in text_string_to_metric_families(metrics)
        if family.name == "aivbatch_jobs"
        for sample in family.samples
    }
    for state, n in gauges.items():
        assert n == sum(batch[state] for batch in truth.values()), state
