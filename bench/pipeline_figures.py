"""What bench/pipeline.py reads back after a run: latencies from Redis and SQL, CPU of a tree."""

from __future__ import annotations

import statistics
from pathlib import Path

import redis
from sqlalchemy import select

from bench.procs import proc_cpu
from models.db import Database
from models.rediskeys import RedisKeys
from models.tables import Job


def percentile(values: list[float], q: int) -> float:
    if len(values) < 2:
        return float("nan")
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def spread(values: list[float]) -> str:
    """``p50 X ms, p99 Y ms over N``."""
    return (
        f"p50 {percentile(values, 50):.0f} ms, p99 {percentile(values, 99):.0f} ms "
        f"over {len(values)}"
    )


def stream_latencies(
    redis_url: str, db: Database, batch_id: str
) -> tuple[list[float], list[float]]:
    """Milliseconds from a worker receiving a chunk to Redis storing its entry (each entry's
    ``ts`` against its stream id), and from a job's claim (its ``started_at`` in SQL) to its
    first chunk stored in Redis (the first chunk entry's stream id)."""
    with db.read() as session:
        claimed = {
            custom_id: started.timestamp() * 1000
            for custom_id, started in session.execute(
                select(Job.custom_id, Job.started_at).where(Job.batch_id == batch_id)
            )
            if started is not None
        }
    client = redis.Redis.from_url(redis_url)
    keys = RedisKeys()
    to_redis: list[float] = []
    first: list[float] = []
    pipe = client.pipeline(transaction=False)
    names = list(claimed)
    for custom_id in names:
        pipe.xrange(keys.job_stream(batch_id, custom_id))
    for custom_id, entries in zip(names, pipe.execute(), strict=True):
        seen = False
        for entry_id, fields in entries:
            if fields.get(b"event") != b"chunk":
                continue
            stored = int(entry_id.split(b"-")[0])
            to_redis.append(stored - int(fields[b"ts"]))
            if not seen:
                first.append(stored - claimed[custom_id])
                seen = True
    client.close()
    return to_redis, first


def children(pid: int) -> list[int]:
    """The direct children of a process (Linux)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        found.extend(int(p) for p in text)
    return found


def tree_cpu(pids: list[int]) -> dict[int, float]:
    """CPU seconds of each process of ``pids`` still there."""
    cpu: dict[int, float] = {}
    for pid in pids:
        try:
            cpu[pid] = proc_cpu(pid)
        except OSError:
            pass
    return cpu
