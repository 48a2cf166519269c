"""Benchmark: N jobs through the whole pipeline, beside a plain asyncio + httpx reference.

    .venv/bin/python bench/pipeline.py --jobs 3000 --streams 500 [--protocol openai]
        [--transport aiohttp|httpcore] [--processes 1,2]

Starts (and stops) the emulator (20 chunks over ~1 s per answer by default), a
private redis-server, a SQLite file (or --database-url), the dispatcher and the workers
(one process, or `aivbatch worker --processes N`). Then, against the same emulator:
  1. the references: one process reading as many streams with uvloop + httpx at the same
     concurrency and doing nothing else, over each transport (``--reference`` specs);
  2. the pipeline: the jobs are written to SQL as the API writes them, and the clock runs
     until the last result is in SQL; once per ``--processes`` count, each on a fresh Redis
     and database.
``--protocol`` picks the provider the pipeline runs: ``aivvm`` (the default: raw text from
``/api/chat``) or ``openai`` (server-sent events from ``/v1/chat/completions``, routed by an
aivbatch.toml naming the emulator as an upstream of kind openai), on the same pacing.
Prints jobs/s against the Little's-law limit (streams in flight / the answer's time: nothing
finishes faster than the upstream answers), chunks/s, chunk-to-Redis latency p50/p99 (from
the worker receiving a chunk to Redis storing it: each entry's ``ts`` field against its
stream id), claim-to-first-chunk p50/p99 (a job's ``started_at`` in SQL against its first
chunk's stream id; it includes the upstream's time to first byte), the workers' peak RSS,
CPU and CPU per job, and the ratio to each reference (which read the Aivvm protocol).
Talks to 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import func, select

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.pipeline_figures import children, spread, stream_latencies, tree_cpu  # noqa: E402
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
from models.tables import Job  # noqa: E402
from models.types import utcnow  # noqa: E402

REFERENCE = ROOT / "bench" / "reference.py"


def run_reference(
    url: str, total: int, concurrency: int, spec: str, emu_pid: int
) -> dict[str, float]:
    """One reference run; ``spec`` is LOOP:TRANSPORT:PER_CLIENT (uvloop:aiohttp:64)."""
    loop, transport, per_client = spec.split(":")
    emu_cpu = proc_cpu(emu_pid)
    out = subprocess.run(
        [
            sys.executable,
            str(REFERENCE),
            url,
            str(total),
            str(concurrency),
            loop,
            transport,
            per_client,
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    if out.returncode:
        raise SystemExit(f"the reference {spec} failed:\n{out.stderr[-3000:]}")
    result = dict(json.loads(out.stdout.strip().splitlines()[-1]))
    result["emulator_cpu_s"] = proc_cpu(emu_pid) - emu_cpu
    print(
        f"reference, plain {loop} + httpx over {transport} ({per_client} streams per client), "
        f"reading only: {result['streams_s']:.1f} streams/s, "
        f"{result['chunks_s']:.0f} chunks/s, client CPU {result['cpu_s']:.2f}s "
        f"({result['cpu_ms_per_stream']:.2f} ms per stream), "
        f"emulator CPU {result['emulator_cpu_s']:.1f}s; {result['failed']} streams failed"
    )
    return result


def worker_argv(processes: int) -> list[str]:
    """One worker process as such, or the supervisor of ``processes`` of them."""
    if processes == 1:
        return [sys.executable, "-m", "worker"]
    script = shutil.which("aivbatch", path=str(Path(sys.executable).parent))
    if script is None:
        raise SystemExit("the aivbatch command is not installed next to this interpreter")
    return [script, "worker", "--processes", str(processes)]


def run_pipeline(
    args: argparse.Namespace, processes: int, procs: Processes, emulator_url: str, emu_pid: int
) -> float:
    redis_url = start_redis(procs)
    db_url = args.database_url or f"sqlite:///{procs.logs / f'bench-{processes}.db'}"
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
        AIVBATCH_HTTP_TRANSPORT=args.transport,
        AIVBATCH_DISPATCH_INTERVAL="0.05",
    )
    worker = procs.spawn(worker_argv(processes), f"worker-{processes}.log", env)
    dispatcher = procs.spawn(
        [sys.executable, "-m", "worker.dispatcher"], f"dispatcher-{processes}.log", env
    )
    time.sleep(3 + processes)  # the workers register their capacity
    workers = [worker.pid] if processes == 1 else [worker.pid, *children(worker.pid)]
    jobs = [
        NewJob(f"q{i}", model, [{"role": "user", "content": f"Question {i}"}])
        for i in range(args.jobs)
    ]
    cpu0 = tree_cpu(workers)
    others0 = {p: proc_cpu(p) for p in (dispatcher.pid, emu_pid)}
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
    cpu1 = tree_cpu(workers)
    worker_cpu = sum(cpu1[p] - cpu0[p] for p in cpu1 if p in cpu0)
    others = {p: proc_cpu(p) - before for p, before in others0.items()}
    with db.read() as session:
        answer_ms = session.execute(
            select(func.avg(Job.duration_ms)).where(Job.batch_id == batch.id)
        ).scalar_one()
    to_redis, first = stream_latencies(redis_url, db, batch.id)
    db.dispose()
    jobs_s: float = args.jobs / elapsed
    answer_s = (args.ttfb_ms + args.chunks * args.delay_ms) / 1000
    limit = processes * args.streams / answer_s
    seen_limit = processes * args.streams / (answer_ms / 1000)
    print(
        f"pipeline, {processes} worker process(es) over {args.transport}: {args.jobs} jobs in "
        f"{elapsed:.2f}s (submit took {submitted * 1000:.0f} ms): {jobs_s:.1f} jobs/s, "
        f"{args.jobs * args.chunks / elapsed:.0f} chunks/s received, "
        f"{len(to_redis) / elapsed:.0f} Redis entries/s; {attempts} attempts"
    )
    print(
        f"Little's-law limit: {processes} x {args.streams} streams / {answer_s:.2f}s = "
        f"{limit:.0f} jobs/s; ratio {jobs_s / limit:.2f}x (the answers took {answer_ms:.0f} ms "
        f"on average as the worker saw them: {seen_limit:.0f} jobs/s, ratio "
        f"{jobs_s / seen_limit:.2f}x)"
    )
    print(f"chunk-to-Redis latency: {spread(to_redis)} entries")
    print(f"claim-to-first-chunk in Redis: {spread(first)} jobs")
    rss = sum(proc_mem_mib(p, "VmHWM") for p in cpu1)
    print(
        f"workers: peak RSS {rss:.0f} MiB, CPU {worker_cpu:.1f}s "
        f"({100 * worker_cpu / elapsed:.0f}% of a core, "
        f"{1000 * worker_cpu / args.jobs:.2f} ms per job); "
        f"dispatcher CPU {others[dispatcher.pid]:.1f}s; emulator CPU {others[emu_pid]:.1f}s"
    )
    return jobs_s


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=3000)
    parser.add_argument(
        "--streams", type=int, default=500, help="streams in flight per worker process"
    )
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
        "--transport",
        choices=("aiohttp", "httpcore"),
        default="aiohttp",
        help="under the workers' httpx clients",
    )
    parser.add_argument(
        "--processes",
        default="1",
        help="worker processes; a list (1,2) runs the pipeline once each",
    )
    parser.add_argument(
        "--protocol", choices=("aivvm", "openai"), default="aivvm", help="the provider to run"
    )
    parser.add_argument(
        "--reference",
        default="uvloop:httpcore:64,uvloop:aiohttp:64",
        help="reading-only runs first, each LOOP:TRANSPORT:STREAMS_PER_CLIENT",
    )
    parser.add_argument("--skip-reference", action="store_true")
    args = parser.parse_args()
    counts = [int(n) for n in args.processes.split(",")]
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
            f"per worker process ({args.per_client} per httpx client, {args.group} jobs per "
            f"message), {args.chunks} chunks per answer over ~{answer_s:.2f}s; "
            f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}, "
            f"Python {sys.version.split()[0]}; upstream: the emulator's {args.protocol} protocol"
        )
        refs = {}
        if not args.skip_reference:
            for spec in args.reference.split(","):
                refs[spec] = run_reference(emulator_url, args.jobs, args.streams, spec, emu.pid)
        results = {}
        for processes in counts:
            results[processes] = run_pipeline(args, processes, procs, emulator_url, emu.pid)
            for spec, ref in refs.items():
                ratio = results[processes] / ref["streams_s"]
                print(
                    f"ratio to the {spec} reference ({ref['streams_s']:.1f} streams/s): "
                    f"{ratio:.2f}x"
                )
        if len(results) > 1:
            first = counts[0]
            print(
                "processes: "
                + ", ".join(
                    f"{n}: {r:.1f} jobs/s ({r / results[first]:.2f}x)" for n, r in results.items()
                )
            )
        print(f"load after: {os.getloadavg()[0]:.2f}")
    finally:
        procs.stop()


if __name__ == "__main__":
    main()
