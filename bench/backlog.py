"""The backlog of the scale benchmark: an emptied database filled with queued jobs, how much
it holds, and the dispatcher pass timed against it (bench/scale.py)."""

from __future__ import annotations

import os
import statistics
import time

from sqlalchemy import create_engine, text

from models.batches import BatchSpec, BatchWriter, NewJob, messages_json
from models.db import Database
from models.migrate import upgrade
from models.types import utcnow

TENANT = "bench"
UNDISPATCH = (
    "UPDATE jobs SET dispatch_token = NULL, dispatched_at = NULL "
    "WHERE status = 'queued' AND dispatch_token IS NOT NULL"
)


def percentile(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def reset(url: str) -> None:
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()
    upgrade(url)


def say(line: str) -> None:
    print(line, flush=True)


def fill(db: Database, batches: int, per_batch: int, label: str) -> list[str]:
    """Write ``batches`` batches of ``per_batch`` queued jobs; returns their ids."""
    start = time.perf_counter()
    ids = []
    for b in range(batches):
        spec = BatchSpec(tenant_id=TENANT, completion_window="30d", now=utcnow())
        with db.write() as session:
            writer = BatchWriter(session, spec)
            for i in range(per_batch):
                messages = [{"role": "user", "content": f"Question {b}.{i}: what is {i} + {i}?"}]
                writer.add(
                    NewJob(f"{label}-{b}-{i}", "gpt-3.5-turbo", messages), messages_json(messages)
                )
            ids.append(writer.finish().id)
    with db.engine.begin() as conn:
        conn.execute(text("ANALYZE"))
    took = time.perf_counter() - start
    n = batches * per_batch
    say(f"filled {batches} batches x {per_batch:,} = {n:,} jobs in {took:.1f}s ({n / took:,.0f}/s)")
    return ids


def held(db: Database) -> dict[str, int]:
    """Jobs by state, from the counters: polled every 0.2 s, it must not count the jobs."""
    with db.read() as session:
        row = session.execute(
            text(
                "SELECT coalesce(sum(queued),0), coalesce(sum(running),0), "
                "coalesce(sum(succeeded),0), coalesce(sum(queued + running + succeeded + failed"
                " + cancelled + expired),0) FROM batch_counters"
            )
        ).one()
    return {"queued": row[0], "running": row[1], "succeeded": row[2], "jobs": row[3]}


def dispatcher_passes(
    env: dict[str, str], db: Database, passes: int, room: int = 500
) -> tuple[float, float, int]:
    """p50/p99 ms of a dispatcher pass with ``room`` streams free (a worker's worth, or none:
    the pass's fixed cost, which is what could grow with the backlog), and jobs it dispatched."""
    os.environ.update(env)
    import redis

    from models import dispatch
    from models.rediskeys import RedisKeys
    from models.settings import Settings
    from worker.celery_app import make_app
    from worker.dispatcher import Dispatcher

    settings = Settings()
    client = redis.Redis.from_url(settings.redis_url)
    app = make_app()
    dispatcher = Dispatcher(settings, db, client, app)
    queue = RedisKeys(settings.redis_prefix).queue
    times, sent = [], 0
    for _ in range(passes):
        with db.write() as session:
            # A fresh worker's worth of room every pass: what was dispatched is handed back.
            session.execute(text(UNDISPATCH))
            dispatch.heartbeat(
                session, "bench-fake", hostname="bench", pid=0, capacity=room, now=utcnow()
            )
        client.delete(queue)
        t0 = time.perf_counter()
        sent = dispatcher.run_pass()
        times.append((time.perf_counter() - t0) * 1000)
    with db.write() as session:
        session.execute(text(UNDISPATCH))
        dispatch.forget_worker(session, "bench-fake")
    client.delete(queue)
    client.close()
    return percentile(times, 50), percentile(times, 99), sent
