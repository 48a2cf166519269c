"""Benchmark: a small batch of one tenant, alone and behind another tenant's slow answers.

    .venv/bin/python bench/fairness.py --streams 500 --slow 600

Starts (and stops) the emulator (answers of ~1 s), a private redis-server, a SQLite file
(or --database-url), the dispatcher and one worker holding --streams streams. Then:
  1. tenant b's batch of --small requests, alone, --repeat times: the time from submitting
     it to its last result in SQL;
  2. tenant a submits --slow requests whose answers take --slow-seconds (a chunk a second,
     so never a stall); once a holds every normal stream of the worker, tenant b's batch
     again, --repeat times.
Prints both times and their ratio (the target: within 3x). Talks to 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import func, select

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.procs import Processes, start_redis, wait_http  # noqa: E402
from cli.embedded import free_port  # noqa: E402
from models.batches import NewJob, cancel_batch, create_batch  # noqa: E402
from models.db import Database  # noqa: E402
from models.migrate import upgrade  # noqa: E402
from models.states import ENDED_BATCH_STATES, JobStatus  # noqa: E402
from models.tables import Batch, Job, WorkerProcess  # noqa: E402
from models.types import utcnow  # noqa: E402

MODEL = "gpt-3.5-turbo"


def submit(db: Database, tenant: str, n: int, marker: str = "") -> str:
    jobs = [
        NewJob(f"{tenant}{i}", MODEL, [{"role": "user", "content": f"Question {i} {marker}"}])
        for i in range(n)
    ]
    with db.write() as session:
        return create_batch(
            session, tenant_id=tenant, jobs=jobs, completion_window="24h", now=utcnow()
        ).id


def wait(condition: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.02)


def ended(db: Database, batch_id: str) -> bool:
    with db.read() as session:
        return session.scalar(select(Batch.status).where(Batch.id == batch_id)) in (
            ENDED_BATCH_STATES
        )


def running(db: Database, batch_id: str) -> int:
    with db.read() as session:
        return int(
            session.scalar(
                select(func.count()).where(
                    Job.batch_id == batch_id, Job.status == JobStatus.RUNNING
                )
            )
            or 0
        )


def small_batch_seconds(db: Database, n: int, repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        batch_id = submit(db, "b", n)
        wait(lambda batch_id=batch_id: ended(db, batch_id), 300, "tenant b's batch")
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--streams", type=int, default=500)
    parser.add_argument("--slow", type=int, default=600, help="tenant a's slow requests")
    parser.add_argument("--slow-seconds", type=int, default=30)
    parser.add_argument("--small", type=int, default=5, help="tenant b's requests")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--database-url", default="")
    args = parser.parse_args()
    procs = Processes(Path(tempfile.mkdtemp(prefix="aivfair-")))
    try:
        port = free_port()
        emulator_url = f"http://127.0.0.1:{port}"
        procs.spawn(
            [sys.executable, "-m", "emulator", "--host", "127.0.0.1", "--port", str(port)],
            "emulator.log",
        )
        wait_http(emulator_url + "/api/models")
        redis_url = start_redis(procs)
        db_url = args.database_url or f"sqlite:///{procs.logs / 'fair.db'}"
        upgrade(db_url)
        db = Database.from_url(db_url)
        env = {k: v for k, v in os.environ.items() if not k.startswith("AIVBATCH_")}
        env.update(
            AIVBATCH_DATABASE_URL=db_url,
            AIVBATCH_REDIS_URL=redis_url,
            AIVBATCH_AIVVM_URL=emulator_url,
            AIVBATCH_WORKER_STREAMS=str(args.streams),
        )
        procs.spawn([sys.executable, "-m", "worker"], "worker.log", env)
        procs.spawn([sys.executable, "-m", "worker.dispatcher"], "dispatcher.log", env)

        def worker_ready() -> bool:
            with db.read() as session:
                return bool(session.scalar(select(func.count(WorkerProcess.id))))

        wait(worker_ready, 60, "the worker")
        alone = small_batch_seconds(db, args.small, args.repeat)
        print(
            f"tenant b, {args.small} requests alone: median {statistics.median(alone):.2f}s "
            f"({', '.join(f'{t:.2f}' for t in alone)})"
        )
        marker = f"[[emulator chunks={args.slow_seconds} delay_ms=1000]]"
        slow = submit(db, "a", args.slow, marker)
        # Groups are started whole, so "full" is within one group of every stream.
        full = args.streams - 32
        wait(lambda: running(db, slow) >= full, 120, "tenant a filling the worker")
        behind = small_batch_seconds(db, args.small, args.repeat)
        print(
            f"tenant b, {args.small} requests behind tenant a's {args.slow} answers of "
            f"{args.slow_seconds}s (holding {running(db, slow)} streams): median "
            f"{statistics.median(behind):.2f}s ({', '.join(f'{t:.2f}' for t in behind)})"
        )
        ratio = statistics.median(behind) / statistics.median(alone)
        print(f"ratio: {ratio:.2f}x (target: at most 3x)")
        with db.write() as session:
            cancel_batch(session, slow, None, now=utcnow())
        db.dispose()
    finally:
        procs.stop()


if __name__ == "__main__":
    main()
