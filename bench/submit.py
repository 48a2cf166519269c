"""Benchmark: how fast the API accepts a large batch, inline and as an uploaded file.

    .venv/bin/python bench/submit.py --requests 50000 [--database-url postgresql+psycopg://…]

Starts (and stops) a private redis-server and one API process (uvicorn, auth off) on a
fresh SQLite file or the given database, then times, over real HTTP on 127.0.0.1:
  1. POST /v1/batches with N inline requests;
  2. POST /v1/files with the same N requests as OpenAI batch lines, then POST /v1/batches
     with its input_file_id.
Each answer comes once the batch and all its jobs are committed. Prints seconds, requests/s,
body size, and how far the API process's RSS rose above where it stood before each step
(its peak, reset before each step) against the body, each against its target (issue 8:
a batch accepted in at most ``TARGET_SECONDS``, memory at most ``TARGET_MEMORY`` times the
body) with "met" or "MISSED". The target is for 50,000 requests; other sizes scale it.
No worker runs: nothing is executed.

``--profile FILE`` records the API process with py-spy (collapsed stacks, ``--format raw``)
while the steps run; the timings then include the sampler's cost.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.procs import Processes, proc_cpu, proc_mem_mib, start_redis, wait_http  # noqa: E402
from cli.embedded import free_port  # noqa: E402
from models.migrate import upgrade  # noqa: E402

TARGET_REQUESTS = 50_000
TARGET_SECONDS = 1.5
TARGET_MEMORY = 3.0


def _verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def _seconds(took: float, n: int) -> str:
    """``took`` against the time target, scaled to ``n`` requests."""
    target = TARGET_SECONDS * n / TARGET_REQUESTS
    return f"{took:.2f}s (target <= {target:.2f}s: {_verdict(took <= target)})"


def _messages(i: int) -> list[dict[str, str]]:
    return [{"role": "user", "content": f"Question {i}: Привет! Как дела? Tell me about {i}."}]


class PeakRss:
    """How far a process's resident memory rises during a step, and the CPU time it uses
    (Linux /proc): on a busy machine its CPU seconds say more than the wall clock."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.base = 0.0
        self.cpu = 0.0

    def start(self) -> None:
        """Reset the process's peak to what it holds now."""
        Path(f"/proc/{self.pid}/clear_refs").write_text("5")
        self.base = proc_mem_mib(self.pid, "VmRSS")
        self.cpu = proc_cpu(self.pid)

    def rise(self, body_bytes: int) -> str:
        """The CPU time and the memory rise since ``start`` (against the body and target)."""
        cpu = proc_cpu(self.pid) - self.cpu
        rise = proc_mem_mib(self.pid, "VmHWM") - self.base
        times = rise / (body_bytes / 2**20)
        return (
            f"API CPU {cpu:.2f}s, API memory +{rise:.0f} MiB ({times:.1f}x the body,"
            f" target <= {TARGET_MEMORY:.0f}x: {_verdict(times <= TARGET_MEMORY)})"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=50_000)
    parser.add_argument("--database-url", default="")
    parser.add_argument("--profile", default="", help="py-spy output file (raw format)")
    args = parser.parse_args()
    n = args.requests

    with tempfile.TemporaryDirectory(prefix="aivbench-") as folder:
        procs = Processes(Path(folder))
        try:
            redis_url = start_redis(procs)
            db_url = args.database_url or f"sqlite:///{folder}/bench.db"
            upgrade(db_url)
            port = free_port()
            env = {k: v for k, v in os.environ.items() if not k.startswith("AIVBATCH_")}
            env.update(
                AIVBATCH_DATABASE_URL=db_url,
                AIVBATCH_REDIS_URL=redis_url,
                AIVBATCH_AUTH_ENABLED="false",
            )
            argv = [sys.executable, "-m", "uvicorn", "--factory", "api.app:create_app"]
            api = procs.spawn([*argv, "--port", str(port)], "api.log", env)
            base = f"http://127.0.0.1:{port}"
            wait_http(base + "/healthz")
            if args.profile:
                spy = shutil.which("py-spy", path=str(Path(sys.executable).parent))
                if spy is None:
                    raise SystemExit("--profile needs py-spy (pip install py-spy)")
                sampler = [spy, "record", "--pid", str(api.pid), "--format", "raw"]
                spy_proc = procs.spawn(
                    [*sampler, "--rate", "250", "-o", args.profile], "py-spy.log"
                )
                time.sleep(1)  # the sampler attaches
            print(f"database: {db_url.split('://')[0]}, {n} requests per batch")
            print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
            with httpx.Client(base_url=base, timeout=600) as client:
                inline = json.dumps(
                    {
                        "requests": [
                            {"custom_id": f"q{i}", "messages": _messages(i)} for i in range(n)
                        ]
                    }
                ).encode()
                peak = PeakRss(api.pid)
                print(f"API at rest: {proc_mem_mib(api.pid, 'VmRSS'):.0f} MiB")
                peak.start()
                start = time.perf_counter()
                r = client.post(
                    "/v1/batches", content=inline, headers={"content-type": "application/json"}
                )
                took = time.perf_counter() - start
                r.raise_for_status()
                print(
                    f"inline create: {_seconds(took, n)} ({n / took:.0f} requests/s,"
                    f" body {len(inline) / 2**20:.1f} MiB), {peak.rise(len(inline))}"
                )

                lines = "\n".join(
                    json.dumps(
                        {
                            "custom_id": f"q{i}",
                            "method": "POST",
                            "url": "/v1/chat/completions",
                            "body": {"model": "gpt-3.5-turbo", "messages": _messages(i)},
                        }
                    )
                    for i in range(n)
                ).encode()
                peak.start()
                start = time.perf_counter()
                upload = client.post(
                    "/v1/files", data={"purpose": "batch"}, files={"file": ("in.jsonl", lines)}
                )
                uploaded = time.perf_counter() - start
                upload.raise_for_status()
                print(f"file upload: {_seconds(uploaded, n)}, {peak.rise(len(lines))}")
                peak.start()
                start = time.perf_counter()
                r = client.post("/v1/batches", json={"input_file_id": upload.json()["id"]})
                created = time.perf_counter() - start
                r.raise_for_status()
                print(
                    f"create from file: {_seconds(created, n)}"
                    f" (file {len(lines) / 2**20:.1f} MiB), {peak.rise(len(lines))}"
                )
                both = uploaded + created
                print(
                    f"upload + create: {_seconds(both, n)} ({n / both:.0f} requests/s end to end)"
                )
            print(f"API peak RSS: {proc_mem_mib(api.pid, 'VmHWM'):.0f} MiB")
            print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
            if args.profile:
                spy_proc.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
                spy_proc.wait(60)
                print(f"profile: {args.profile}")
        finally:
            procs.stop()


if __name__ == "__main__":
    main()
