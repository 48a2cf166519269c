"""Benchmark: costs as the backlog grows, at 10,000 and at 1,000,000 jobs held.

    .venv/bin/python bench/scale.py --database-url postgresql+psycopg://postgres@127.0.0.1/DB
    .venv/bin/python bench/scale.py --database-url ... --jobs 100000 --rss-jobs 20000  # quick

EMPTIES the database it is given (its public schema is dropped and migrated afresh). Starts
(and stops) a private redis-server, the emulator, one API process; fills 20 batches of
queued jobs straight into SQL (as the API writes them, with COPY on PostgreSQL), first
``--small`` jobs in all, then more batches up to ``--jobs``. At each size it prints:
  * p50/p99 latency of ``GET /v1/batches?limit=20``, ``GET /v1/batches/{id}`` (a batch of the
    latest size) and ``GET /metrics``, over ``--calls`` calls each through the API process;
  * the dispatcher pass (recovery, expiry, dispatching a worker's worth of jobs, finalize),
    run here in-process ``--passes`` times, every pass with a full worker's room to fill,
    then as many with no room (the pass's fixed cost);
  * jobs/s of one worker process (with its dispatcher) working through the backlog,
    measured over ``--pipeline-jobs`` jobs after a warm-up, and the ratio of the two sizes;
and, at the large size, the worker's RSS after 10,000 and after ``--rss-jobs`` jobs.
Talks to 127.0.0.1 only; every process it starts is stopped by PID; bounded by
``--max-seconds`` per pipeline run.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
from sqlalchemy import text

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.backlog import (  # noqa: E402
    TENANT,
    UNDISPATCH,
    dispatcher_passes,
    fill,
    held,
    percentile,
    reset,
    say,
)
from bench.procs import Processes, proc_mem_mib, start_redis, wait_http  # noqa: E402
from cli.embedded import free_port  # noqa: E402
from models.apikeys import create_key  # noqa: E402
from models.db import Database  # noqa: E402
from models.types import utcnow  # noqa: E402


@dataclass
class Figures:
    """What one backlog size measured."""

    latency: dict[str, tuple[float, float]]  # name -> (p50, p99) ms
    pass_ms: tuple[float, float]
    jobs_s: float
    rss: dict[int, float]  # jobs done -> MiB


TARGETS_MS = {"list": 30.0, "batch": 10.0, "metrics": 20.0, "pass": 50.0}


def latencies(api: httpx.Client, calls: int, batch_id: str) -> dict[str, tuple[float, float]]:
    paths = {
        "list": "/v1/batches?limit=20",
        "batch": f"/v1/batches/{batch_id}",
        "metrics": "/metrics",
    }
    result = {}
    for name, path in paths.items():
        times = []
        for _ in range(calls + 5):
            t0 = time.perf_counter()
            r = api.get(path)
            times.append((time.perf_counter() - t0) * 1000)
            r.raise_for_status()
        times = times[5:]  # the first calls warm the connection and the caches
        result[name] = (percentile(times, 50), percentile(times, 99))
    return result


def wait_for(what: str, done: Callable[[], bool], deadline: float, *, fatal: bool = True) -> bool:
    while not done():
        if time.monotonic() > deadline:
            if fatal:
                raise SystemExit(f"timed out waiting for {what}")
            return False
        time.sleep(0.2)
    return True


def pipeline(
    args: argparse.Namespace, procs: Processes, env: dict[str, str], db: Database, rss: bool
) -> tuple[float, dict[int, float]]:
    """Jobs/s of one worker through the backlog, and its RSS after given numbers of jobs."""
    worker = procs.spawn([sys.executable, "-m", "worker"], "worker.log", env)
    dispatcher = procs.spawn([sys.executable, "-m", "worker.dispatcher"], "dispatcher.log", env)
    deadline = time.monotonic() + args.max_seconds
    base = held(db)["succeeded"]

    def reach(n: int) -> Callable[[], bool]:
        return lambda: held(db)["succeeded"] - base >= n

    wait_for("the warm-up", reach(args.warmup), deadline)
    t0, n0 = time.perf_counter(), held(db)["succeeded"] - base
    wait_for("the measured jobs", reach(n0 + args.pipeline_jobs), deadline)
    n1 = held(db)["succeeded"] - base
    jobs_s = (n1 - n0) / (time.perf_counter() - t0)
    rss_at: dict[int, float] = {}
    for mark in (10_000, args.rss_jobs) if rss else ():
        if not wait_for(f"{mark} jobs", reach(mark), deadline, fatal=False):
            say(f"   (stopped at --max-seconds before {mark:,} jobs)")
            break
        rss_at[mark] = proc_mem_mib(worker.pid, "VmRSS")
    for proc in (dispatcher, worker):
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
    with db.write() as session:  # the worker handed back what it held; nothing is dispatched
        session.execute(text(UNDISPATCH))
    return jobs_s, rss_at


def measure(
    args: argparse.Namespace,
    procs: Processes,
    env: dict[str, str],
    db: Database,
    api: httpx.Client,
    batch_id: str,
    *,
    rss: bool,
) -> Figures:
    now = held(db)
    say(f"-- {now['jobs']:,} jobs held ({now['queued']:,} queued); load {os.getloadavg()}")
    lat = latencies(api, args.calls, batch_id)
    for name, (p50, p99) in lat.items():
        say(
            f"   {name:8s} p50 {p50:7.1f} ms  p99 {p99:7.1f} ms"
            f"  (target p50 <= {TARGETS_MS[name]:g} ms)"
        )
    p50, p99, sent = dispatcher_passes(env, db, args.passes)
    say(
        f"   dispatcher pass p50 {p50:.1f} ms p99 {p99:.1f} ms,"
        f" dispatching {sent} jobs each (target <= 50 ms)"
    )
    idle50, idle99, _ = dispatcher_passes(env, db, args.passes, room=0)
    say(f"   dispatcher pass with no room p50 {idle50:.1f} ms p99 {idle99:.1f} ms (its fixed cost)")
    jobs_s, rss_at = pipeline(args, procs, env, db, rss)
    say(
        f"   pipeline: {jobs_s:.1f} jobs/s over {args.pipeline_jobs:,} jobs"
        f" (after {args.warmup:,} warm-up)"
    )
    for mark, mib in rss_at.items():
        say(f"   worker RSS after {mark:,} jobs: {mib:.0f} MiB")
    return Figures(lat, (p50, p99), jobs_s, rss_at)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database-url", required=True, help="a PostgreSQL database to EMPTY")
    parser.add_argument("--jobs", type=int, default=1_000_000, help="jobs held at the large size")
    parser.add_argument("--small", type=int, default=10_000, help="jobs held at the small size")
    parser.add_argument("--batches", type=int, default=20, help="batches added at each size")
    parser.add_argument("--calls", type=int, default=200, help="calls per latency figure")
    parser.add_argument("--passes", type=int, default=20, help="dispatcher passes timed")
    parser.add_argument("--streams", type=int, default=500)
    parser.add_argument("--warmup", type=int, default=1000)
    parser.add_argument("--pipeline-jobs", type=int, default=5000)
    parser.add_argument("--rss-jobs", type=int, default=100_000)
    parser.add_argument("--chunks", type=int, default=20)
    parser.add_argument("--delay-ms", type=int, default=50)
    parser.add_argument("--max-seconds", type=float, default=900, help="bound of each pipeline run")
    args = parser.parse_args()

    def stop(_sig: int, _frame: object) -> None:
        raise SystemExit("stopped by SIGTERM")

    # A SIGTERM unwinds like Ctrl-C, so the processes started here are stopped too.
    signal.signal(signal.SIGTERM, stop)
    procs = Processes(Path(tempfile.mkdtemp(prefix="aivscale-")))
    say(f"aivbatch scale benchmark; {os.cpu_count()} cores; logs in {procs.logs}")
    try:
        reset(args.database_url)
        db = Database.from_url(args.database_url)
        redis_url = start_redis(procs)
        port = free_port()
        emulator_url = f"http://127.0.0.1:{port}"
        emu_argv = [
            "--chunks",
            str(args.chunks),
            "--delay-ms",
            str(args.delay_ms),
            "--ttfb-ms",
            "50",
        ]
        procs.spawn(
            [
                sys.executable,
                "-m",
                "emulator",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                *emu_argv,
            ],
            "emulator.log",
        )
        wait_http(emulator_url + "/api/models", timeout=120)
        env = {k: v for k, v in os.environ.items() if not k.startswith("AIVBATCH_")}
        env.update(
            AIVBATCH_DATABASE_URL=args.database_url,
            AIVBATCH_REDIS_URL=redis_url,
            AIVBATCH_AIVVM_URL=emulator_url,
            AIVBATCH_WORKER_STREAMS=str(args.streams),
            AIVBATCH_DISPATCH_INTERVAL="0.05",
            # The latency loops call faster than a tenant's default rate limit allows.
            AIVBATCH_KEY_REQUESTS_PER_SECOND="100000",
        )
        api_port = free_port()
        argv = [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            "api.app:create_app",
            "--port",
            str(api_port),
        ]
        procs.spawn([*argv, "--log-level", "warning"], "api.log", env)
        api_url = f"http://127.0.0.1:{api_port}"
        wait_http(api_url + "/healthz", timeout=120)
        with db.write() as session:
            key = create_key(session, TENANT, name="bench", now=utcnow()).secret
        api = httpx.Client(base_url=api_url, headers={"Authorization": f"Bearer {key}"}, timeout=30)

        small = fill(db, args.batches, args.small // args.batches, "s")
        first = measure(args, procs, env, db, api, small[-1], rss=False)
        more = args.jobs - held(db)["jobs"]
        large = fill(db, args.batches, more // args.batches, "l")
        second = measure(args, procs, env, db, api, large[-1], rss=True)
        api.close()

        say("== summary (p50; each latency target is for p50)")
        for name in ("list", "batch", "metrics"):
            x, y = first.latency[name][0], second.latency[name][0]
            say(f"   {name:8s} {x:7.1f} ms -> {y:7.1f} ms (target {TARGETS_MS[name]:g} ms)")
        x, y = first.pass_ms[0], second.pass_ms[0]
        say(f"   pass     {x:7.1f} ms -> {y:7.1f} ms (target 50 ms)")
        ratio = second.jobs_s / first.jobs_s
        say(
            f"   jobs/s   {first.jobs_s:.1f} -> {second.jobs_s:.1f}:"
            f" ratio {ratio:.3f} (target within 5 %)"
        )
        if len(second.rss) == 2:
            r10, rn = second.rss[10_000], second.rss[args.rss_jobs]
            say(
                f"   worker RSS {r10:.0f} MiB after 10,000 jobs -> {rn:.0f} MiB after"
                f" {args.rss_jobs:,}: ratio {rn / r10:.3f} (target within 10 %)"
            )
        db.dispose()
    finally:
        procs.stop()


if __name__ == "__main__":
    main()
