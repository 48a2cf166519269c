"""Load on the Aivvm emulator alone: how much CPU does one stream cost it?

    .venv/bin/python bench/emulator_load.py [--concurrency 1000] [--streams 3000] [--clients 1]

Starts the emulator (20 chunks of 24 bytes over ~1 s by default) on 127.0.0.1, warms it up,
then reads ``--streams`` answers with ``--concurrency`` in flight from ``--clients``
processes (asyncio + httpx.AsyncClient, keep-alive pool of 20; see DESIGN.md), and prints
streams/s, the emulator's CPU per stream and utilisation, the clients' CPU and the stream
durations. It says which side ran out of CPU first. Everything it starts, it stops.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from cli.embedded import free_port

ROOT = Path(__file__).resolve().parents[1]
BODY = {
    "model": {"id": "gpt-3.5-turbo", "name": "GPT-3.5"},
    "key": "",
    "temperature": 0.7,
    "prompt": "You are a helpful assistant.",
}


def proc_cpu(pid: int) -> float:
    """User + system CPU seconds of a process (utime + stime of /proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_cpu() -> float:
    """CPU seconds the whole machine has spent busy (all cores, from /proc/stat)."""
    ticks = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    # user nice system idle iowait irq softirq steal: everything but idle and iowait.
    return (sum(ticks[:8]) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")


async def _drive(url: str, first: int, total: int, concurrency: int, deadline: float) -> Any:
    limits = httpx.Limits(max_connections=concurrency + 10, max_keepalive_connections=20)
    timeout = httpx.Timeout(60.0, connect=30.0, pool=60.0)
    numbers = iter(range(first, first + total))
    durations: list[float] = []
    errors: list[str] = []
    async with httpx.AsyncClient(limits=limits, timeout=timeout) as client:

        async def reader() -> None:
            for i in numbers:
                if time.monotonic() > deadline:
                    return
                payload = dict(BODY, messages=[{"role": "user", "content": f"Question {i}"}])
                start = time.perf_counter()
                try:
                    async with client.stream("POST", url + "/api/chat", json=payload) as response:
                        response.raise_for_status()
                        async for _ in response.aiter_raw():
                            pass
                except httpx.HTTPError as exc:
                    errors.append(f"{type(exc).__name__}: {exc}")
                    continue
                durations.append(time.perf_counter() - start)

        cpu0, start = time.process_time(), time.perf_counter()
        await asyncio.gather(*(reader() for _ in range(concurrency)))
        elapsed = time.perf_counter() - start
    return {
        "durations": durations,
        "errors": errors,
        "elapsed": elapsed,
        "cpu": time.process_time() - cpu0,
    }


def client_process(
    url: str, first: int, total: int, concurrency: int, deadline: float, start_at: float = 0.0
) -> Any:
    """One client process (uvloop, like the workers), starting at wall time ``start_at``."""
    import uvloop

    time.sleep(max(0.0, start_at - time.time()))
    return uvloop.run(_drive(url, first, total, concurrency, deadline))


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def _run(args: argparse.Namespace, url: str, pid: int) -> dict[str, Any]:
    n = args.clients
    shares = [(args.streams * (k + 1)) // n - (args.streams * k) // n for k in range(n)]
    starts = [sum(shares[:k]) for k in range(n)]
    deadline = time.monotonic() + args.time_limit
    if n == 1:
        cpu0, box0, wall0 = proc_cpu(pid), machine_cpu(), time.perf_counter()
        parts = [client_process(url, 0, args.streams, args.concurrency, deadline)]
        wall, cpu = time.perf_counter() - wall0, proc_cpu(pid) - cpu0
        box = machine_cpu() - box0
    else:
        # Spawned clients import for a while: all start together, and so does the clock.
        start_at = time.time() + 5
        jobs = [
            (url, starts[k], shares[k], args.concurrency // n, deadline, start_at) for k in range(n)
        ]
        with multiprocessing.get_context("spawn").Pool(n) as pool:
            pending = pool.starmap_async(client_process, jobs)
            time.sleep(max(0.0, start_at - time.time()))
            cpu0, box0, wall0 = proc_cpu(pid), machine_cpu(), time.perf_counter()
            parts = pending.get(args.time_limit + 60)
            wall, cpu = time.perf_counter() - wall0, proc_cpu(pid) - cpu0
            box = machine_cpu() - box0
    return {
        "wall": wall,
        "emulator_cpu": cpu,
        "machine_cpu": box,
        "durations": [d for p in parts for d in p["durations"]],
        "errors": [e for p in parts for e in p["errors"]],
        "client_cpu": [p["cpu"] for p in parts],
        "client_elapsed": [p["elapsed"] for p in parts],
    }


def _report(args: argparse.Namespace, r: dict[str, Any]) -> None:
    done = len(r["durations"])
    ideal = (args.ttfb_ms + (args.chunks - 1) * args.delay_ms) / 1000
    emu_util = r["emulator_cpu"] / r["wall"]
    client_util = [c / e for c, e in zip(r["client_cpu"], r["client_elapsed"], strict=True)]
    print(
        f"{done} streams of {args.chunks}×{args.chunk_size} B (ideal {ideal:.2f} s each), "
        f"{args.concurrency} in flight, {args.clients} client process(es), "
        f"{os.cpu_count()} cores, Python {sys.version.split()[0]}"
    )
    print(f"  throughput         {done / r['wall']:.0f} streams/s  (wall {r['wall']:.1f} s)")
    print(f"  emulator CPU       {r['emulator_cpu'] / max(done, 1) * 1000:.2f} ms per stream")
    print(f"  emulator CPU util  {emu_util * 100:.0f} % of one core")
    cpus = ", ".join(
        f"{c:.1f} s ({u * 100:.0f} %)" for c, u in zip(r["client_cpu"], client_util, strict=True)
    )
    print(f"  client CPU         {cpus}")
    print(
        f"  stream duration    p50 {_percentile(r['durations'], 0.5):.3f} s, "
        f"p99 {_percentile(r['durations'], 0.99):.3f} s"
    )
    if r["errors"]:
        print(f"  errors             {len(r['errors'])}, e.g. {r['errors'][0]}")
    per_stream = r["emulator_cpu"] / max(done, 1)
    print(
        f"  emulator ceiling   ~{1 / per_stream:.0f} streams/s per core at this cost"
        if per_stream
        else "  emulator ceiling   (too little CPU used to measure)"
    )
    ours = r["emulator_cpu"] + sum(r["client_cpu"])
    others = max(0.0, r["machine_cpu"] - ours) / r["wall"]
    busy = r["machine_cpu"] / r["wall"] / (os.cpu_count() or 1)
    print(
        f"  machine CPU        {busy * 100:.0f} % of {os.cpu_count()} cores busy; "
        f"other processes and kernel {others:.2f} cores"
    )
    if emu_util > 0.85:
        print("  bottleneck: the emulator (over 85 % of its core)")
    elif max(client_util) > 0.85:
        print(
            "  bottleneck: the httpx client, not the emulator (client at "
            f"{max(client_util) * 100:.0f} % of a core, emulator at {emu_util * 100:.0f} %)"
        )
    elif busy > 0.7:
        print(
            f"  bottleneck: the machine's cores ({busy * 100:.0f} % busy); the clients used "
            f"{sum(r['client_cpu']) / max(r['emulator_cpu'], 1e-9):.1f}× the emulator's CPU"
            + (f", others {others:.2f} cores" if others > 0.2 else "")
        )
    else:
        print("  bottleneck: none on CPU; streams are paced by the emulator's delays")


def main() -> None:
    """Start the emulator, warm it up, load it, report, stop it."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--concurrency", type=int, default=1000, help="streams in flight")
    parser.add_argument("--streams", type=int, default=3000, help="streams in total (bounded)")
    parser.add_argument("--clients", type=int, default=1, help="client processes")
    parser.add_argument("--chunks", type=int, default=20)
    parser.add_argument("--chunk-size", type=int, default=24)
    parser.add_argument("--ttfb-ms", type=float, default=50)
    parser.add_argument("--delay-ms", type=float, default=50)
    parser.add_argument("--time-limit", type=float, default=120, help="seconds; then give up")
    args = parser.parse_args()
    if not 1 <= args.streams <= 100_000 or not 1 <= args.concurrency <= 5000:
        parser.error("streams must be 1..100000 and concurrency 1..5000")

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    fd, name = tempfile.mkstemp(prefix="aivemu-bench-", suffix=".log")
    os.close(fd)
    log = Path(name)
    flags = ["--chunks", str(args.chunks), "--chunk-size", str(args.chunk_size)]
    flags += ["--ttfb-ms", str(args.ttfb_ms), "--delay-ms", str(args.delay_ms)]
    with log.open("ab") as out:
        emu = subprocess.Popen(
            [sys.executable, "-m", "emulator", "--host", "127.0.0.1", "--port", str(port)] + flags,
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.get(url + "/api/models", timeout=1)
                break
            except httpx.HTTPError:
                if emu.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"the emulator did not start:\n{log.read_text()}") from None
                time.sleep(0.1)
        # Warm-up: first-call costs (imports, caches) are not what a stream costs.
        client_process(url, 10**6, 200, 100, time.monotonic() + 30)
        result = _run(args, url, emu.pid)
        stats = httpx.get(url + "/_emulator/stats", timeout=5).json()
        _report(args, result)
        print(f"  emulator stats     completed {stats['completed']} (incl. 200 warm-up)")
    finally:
        emu.terminate()
        try:
            emu.wait(10)
        except subprocess.TimeoutExpired:
            emu.kill()
            emu.wait()
        log.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
