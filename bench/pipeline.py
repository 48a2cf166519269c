"""Benchmark: N jobs through the whole pipeline, beside a plain asyncio + httpx reference.

    .venv/bin/python bench/pipeline.py --jobs 3000 --streams 500 [--protocol openai]

Starts (and stops) the emulator (20 chunks over ~1 s per answer by default), a
private redis-server, a SQLite file (or --database-url), the dispatcher and ONE worker
process. Then, against the same emulator:
  1. the reference: one process reading as many streams with asyncio + httpx at the same
     concurrency and doing nothing else (the default event loop, then uvloop);
  2. the pipeline: the jobs are written to SQL as the API writes them, and the clock runs
     until the last result is in SQL.
``--protocol`` picks the provider the pipeline runs: ``aivvm`` (the default: raw text from
``/api/chat``) or ``openai`` (server-sent events from ``/v1/chat/completions``, routed by an
aivbatch.toml naming the emulator as an upstream of kind openai), on the same pacing.
Prints jobs/s, chunks/s, chunk-to-Redis latency p50/p99 (from the worker receiving a chunk
to Redis storing it: each entry's ``ts`` field against its stream id), the worker's peak
RSS, CPU and CPU per job, and the ratio to the reference (which reads the Aivvm protocol).
Talks to 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis
from sqlalchemy import func, select

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.procs import (  # noqa: E402
    Processes,
    proc_cpu,
    proc_mem_mib,
    start_redis,
    wait_http,
)
from cli.embedded import free_port  # noqa: E402
from models.batches import NewJob, create_batch  # noqa: E402
from models.db import Database  # noqa: E402
from models.migrate import upgrade  # noqa: E402
from models.rediskeys import RedisKeys  # noqa: E402
from models.tables import Job  # noqa: E402
from models.types import utcnow  # noqa: E402

REFERENCE = ROOT / "bench" / "reference.py"


def percentile(values: list[float], q: int) -> float:
    if len(values) < 2:
        return float("nan")
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def run_reference(
    url: str, total: int, concurrency: int, loop: str, emu_pid: int
) -> dict[str, float]:
    emu_cpu = proc_cpu(emu_pid)
    out = subprocess.run(
        [sys.executable, str(REFERENCE), url, str(total), str(concurrency), loop],
        capture_output=True,
        text=True,
        check=True,
        timeout=900,
    )
    result = dict(json.loads(out.stdout.strip().splitlines()[-1]))
    result["emulator_cpu_s"] = proc_cpu(emu_pid) - emu_cpu
    print(
        f"reference, plain {loop} + httpx reading only: {result['streams_s']:.1f} streams/s, "
        f"{result['chunks_s']:.0f} chunks/s, client CPU {result['cpu_s']:.1f}s, "
        f"emulator CPU {result['emulator_cpu_s']:.1f}s"
    )
    return result


def chunk_latencies(redis_url: str, batch_id: str, jobs: int) -> list[float]:
    """Milliseconds from a worker receiving a chunk to Redis storing its entry."""
    client = redis.Redis.from_url(redis_url)
    keys = RedisKeys()
    latencies: list[float] = []
    for i in range(jobs):
        for entry_id, fields in client.xrange(keys.job_stream(batch_id, f"q{i}")):
            if fields.get(b"event") == b"chunk":
                latencies.append(int(entry_id.split(b"-")[0]) - int(fields[b"ts"]))
    client.close()
    return latencies


def run_pipeline(
    args: argparse.Namespace, procs: Processes, emulator_url: str, emu_pid: int
) -> float:
    redis_url = start_redis(procs)
    db_url = args.database_url or f"sqlite:///{procs.logs / 'bench.db'}"
    upgrade(db_url)
    db = Database.from_url(db_url)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIVBATCH_")}
    model = "gpt-3.5-turbo"
    if args.protocol == "openai":
        model = "gpt-4o-mini"
        config = procs.logs / "aivbatch.toml"
        config.write_text(
            '[[upstreams]]\nname = "bench"\nkind = "openai"\n'
            f'base_url = "{emulator_url}/v1"\nmodels = ["{model}"]\n'
        )
        env["AIVBATCH_CONFIG"] = str(config)
    env.update(
        AIVBATCH_DATABASE_URL=db_url,
        AIVBATCH_REDIS_URL=redis_url,
        AIVBATCH_AIVVM_URL=emulator_url,
        AIVBATCH_WORKER_STREAMS=str(args.streams),
        AIVBATCH_CHUNK_FLUSH_MS=str(args.flush_ms),
        AIVBATCH_DISPATCH_GROUP=str(args.group),
        AIVBATCH_STREAMS_PER_CLIENT=str(args.per_client),
        AIVBATCH_DISPATCH_INTERVAL="0.05",
    )
    worker = procs.spawn([sys.executable, "-m", "worker"], "worker.log", env)
    dispatcher = procs.spawn([sys.executable, "-m", "worker.dispatcher"], "dispatcher.log", env)
    time.sleep(3)  # the worker registers its capacity
    jobs = [
        NewJob(f"q{i}", model, [{"role": "user", "content": f"Question {i}"}])
        for i in range(args.jobs)
    ]
    cpu0 = {p.pid: proc_cpu(p.pid) for p in (worker, dispatcher)} | {emu_pid: proc_cpu(emu_pid)}
    start = time.perf_counter()
    with db.write() as session:
        batch = create_batch(
            session, tenant_id="bench", jobs=jobs, completion_window="24h", now=utcnow()
        )
    submitted = time.perf_counter() - start
    done, attempts = 0, 0
    while done < args.jobs:
        time.sleep(0.1)
        with db.read() as session:
            done, attempts = session.execute(
                select(func.count(Job.id), func.coalesce(func.sum(Job.attempt), 0)).where(
                    Job.batch_id == batch.id, Job.status == "succeeded"
                )
            ).one()
        if time.perf_counter() - start > 900:
            raise SystemExit(f"timed out: {done}/{args.jobs} done; logs in {procs.logs}")
    elapsed = time.perf_counter() - start
    cpu = {pid: proc_cpu(pid) - before for pid, before in cpu0.items()}
    db.dispose()
    latencies = chunk_latencies(redis_url, batch.id, args.jobs)
    jobs_s = args.jobs / elapsed
    print(
        f"pipeline: {args.jobs} jobs in {elapsed:.2f}s (submit took {submitted * 1000:.0f} ms): "
        f"{jobs_s:.1f} jobs/s, {args.jobs * args.chunks / elapsed:.0f} chunks/s received, "
        f"{len(latencies) / elapsed:.0f} Redis entries/s; {attempts} attempts"
    )
    print(
        f"chunk-to-Redis latency: p50 {percentile(latencies, 50):.0f} ms, "
        f"p99 {percentile(latencies, 99):.0f} ms over {len(latencies)} entries"
    )
    print(
        f"worker: peak RSS {proc_mem_mib(worker.pid, 'VmHWM'):.0f} MiB, CPU {cpu[worker.pid]:.1f}s "
        f"({100 * cpu[worker.pid] / elapsed:.0f}% of a core, "
        f"{1000 * cpu[worker.pid] / args.jobs:.2f} ms per job); "
        f"dispatcher CPU {cpu[dispatcher.pid]:.1f}s; emulator CPU {cpu[emu_pid]:.1f}s"
    )
    return jobs_s


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=3000)
    parser.add_argument("--streams", type=int, default=500, help="streams in flight in the worker")
    parser.add_argument("--chunks", type=int, default=20)
    parser.add_argument("--delay-ms", type=int, default=50)
    parser.add_argument("--ttfb-ms", type=int, default=50)
    parser.add_argument("--database-url", default="", help="default: a SQLite file in a temp dir")
    parser.add_argument("--flush-ms", type=float, default=25.0, help="chunk coalescing window")
    parser.add_argument("--group", type=int, default=32, help="jobs per broker message")
    parser.add_argument(
        "--per-client", type=int, default=64, help="streams per httpx client in the worker"
    )
    parser.add_argument(
        "--protocol", choices=("aivvm", "openai"), default="aivvm", help="the provider to run"
    )
    parser.add_argument("--skip-reference", action="store_true")
    args = parser.parse_args()
    procs = Processes(Path(tempfile.mkdtemp(prefix="aivbench-")))
    try:
        port = free_port()
        emulator_url = f"http://127.0.0.1:{port}"
        emu = procs.spawn(
            [
                sys.executable,
                "-m",
                "emulator",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--chunks",
                str(args.chunks),
                "--delay-ms",
                str(args.delay_ms),
                "--ttfb-ms",
                str(args.ttfb_ms),
            ],
            "emulator.log",
        )
        wait_http(emulator_url + "/api/models")
        answer_s = (args.ttfb_ms + args.chunks * args.delay_ms) / 1000
        print(
            f"aivbatch pipeline benchmark: {args.jobs} jobs, {args.streams} streams in flight "
            f"({args.per_client} per httpx client, {args.group} jobs per message), "
            f"{args.chunks} chunks per answer over ~{answer_s:.1f}s; "
            f"{os.cpu_count()} cores, Python {sys.version.split()[0]}; "
            f"upstream: the emulator's {args.protocol} protocol"
        )
        refs = {}
        if not args.skip_reference:
            for loop in ("asyncio", "uvloop"):
                refs[loop] = run_reference(emulator_url, args.jobs, args.streams, loop, emu.pid)
        jobs_s = run_pipeline(args, procs, emulator_url, emu.pid)
        for loop, ref in refs.items():
            ratio = jobs_s / ref["streams_s"]
            print(f"ratio to the {loop} reference ({ref['streams_s']:.1f} streams/s): {ratio:.2f}x")
    finally:
        procs.stop()


if __name__ == "__main__":
    main()
