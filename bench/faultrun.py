"""The fault-and-abuse run: a whole stack on PostgreSQL through its faults, checked exactly.

    .venv/bin/python bench/faultrun.py --jobs 2000

Starts (and stops) a private PostgreSQL (pgserver), a private redis-server without
persistence, the emulator (upstream faults at --fault-rate), the API with auth on, two
workers and two dispatchers, all on 127.0.0.1. Tenant a submits --jobs requests in four
inline batches over the API; tenant b submits a 5-request batch every few seconds and times
it. A prober calls the API's read routes with both keys all along. Meanwhile, on a fixed
timeline: a worker is SIGKILLed (and started again), Redis is flushed, Redis is SIGKILLed and
started again empty on its port, PostgreSQL is stopped (immediate) and started again, a
dispatcher is SIGKILLed (and started again).

Then it checks, and prints: every request ended succeeded, once, with exactly the text the
emulator sent for it (recomputed from the request the emulator recorded); every job's Redis
stream holds that text from offset 0 and one terminal entry; the API answered no 5xx but
503 with Retry-After, and how many of those during which outage; tenant b's batch times
against its time on the quiet stack. Exits 1 if any check fails.
"""

from __future__ import annotations

import argparse
import collections
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import redis

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.procs import Processes, wait_http  # noqa: E402
from cli.embedded import EmbeddedRedis, free_port  # noqa: E402
from emulator.request import parse_chat  # noqa: E402
from emulator.text import answer_chunks  # noqa: E402
from models.apikeys import create_key  # noqa: E402
from models.db import Database  # noqa: E402
from models.migrate import upgrade  # noqa: E402
from models.rediskeys import EV_CHUNK, EV_DONE, RedisKeys  # noqa: E402
from models.results import finished_jobs  # noqa: E402
from models.states import ENDED_BATCH_STATES, TERMINAL_JOB_STATES  # noqa: E402
from models.types import utcnow  # noqa: E402

PREFIX = "aivfault"
CHUNKS, CHUNK_SIZE = 20, 24
# A marker that makes the emulator fault none of a request's calls (its fault, 0 times).
SPARED = "[[emulator fault=500 times=0]]"
READ_ROUTES = ("/v1/batches?limit=20", "/v1/batches/{batch}", "/v1/batches/{batch}/results")


@dataclass
class Probe:
    """What the prober saw: status codes by outage, and 503s without Retry-After."""

    outage: str = "none"
    codes: dict[str, collections.Counter[int]] = field(
        default_factory=lambda: collections.defaultdict(collections.Counter)
    )
    bad: list[str] = field(default_factory=list)
    calls: int = 0


def _text(value: bytes | str) -> str:
    """A Redis field or value as text (the client answers bytes)."""
    return value.decode() if isinstance(value, bytes) else value


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def start_postgres(folder: Path) -> Any:
    import pgserver

    return pgserver.get_server(folder, cleanup_mode="stop")


def restart_postgres(server: Any, down_seconds: float) -> None:
    import pgserver

    pgserver.pg_ctl(["-m", "immediate", "stop"], pgdata=server.pgdata, user=server.system_user)
    time.sleep(down_seconds)
    server.ensure_postgres_running()


class Stack:
    """The service's processes, each restartable by name."""

    def __init__(self, procs: Processes, env: dict[str, str], api_port: int) -> None:
        self.procs = procs
        self.env = env
        self.api_port = api_port
        self.running: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str) -> None:
        python, aivbatch = sys.executable, str(Path(sys.executable).with_name("aivbatch"))
        argv = {
            "api": [aivbatch, "api", "--host", "127.0.0.1", "--port", str(self.api_port)],
            "worker-1": [python, "-m", "worker"],
            "worker-2": [python, "-m", "worker"],
            "dispatcher-1": [python, "-m", "worker.dispatcher"],
            "dispatcher-2": [python, "-m", "worker.dispatcher"],
        }[name]
        self.running[name] = self.procs.spawn(argv, f"{name}.log", self.env)

    def kill(self, name: str) -> None:
        proc = self.running[name]
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)

    def restart(self, name: str) -> None:
        """SIGKILL the process, then start it again."""
        self.kill(name)
        self.start(name)


def prober(
    url: str, keys: list[str], batches: list[str], probe: Probe, stop: threading.Event
) -> None:
    clients = [httpx.Client(base_url=url, headers={"Authorization": f"Bearer {k}"}) for k in keys]
    while not stop.is_set():
        for client in clients:
            for route in READ_ROUTES:
                if "{batch}" in route and not batches:
                    continue
                path = route.format(batch=batches[probe.calls % len(batches)] if batches else "")
                try:
                    response = client.get(path, timeout=10)
                except httpx.HTTPError as exc:
                    probe.codes[probe.outage][0] += 1
                    probe.bad.append(f"{path}: {type(exc).__name__} during {probe.outage}")
                    continue
                probe.calls += 1
                probe.codes[probe.outage][response.status_code] += 1
                if response.status_code >= 500 and not (
                    response.status_code == 503 and response.headers.get("retry-after")
                ):
                    probe.bad.append(f"{path}: {response.status_code} during {probe.outage}")
        stop.wait(0.05)
    for client in clients:
        client.close()


def submit(client: httpx.Client, prefix: str, n: int, *, markers: str = "") -> str:
    requests = [
        {
            "custom_id": f"{prefix}-{i}",
            "messages": [{"role": "user", "content": f"{prefix} question {i} {markers}"}],
        }
        for i in range(n)
    ]
    deadline = time.monotonic() + 120
    while True:
        response = client.post("/v1/batches", json={"requests": requests}, timeout=120)
        if response.status_code == 200:
            return str(response.json()["id"])
        if response.status_code != 503 or time.monotonic() > deadline:
            raise SystemExit(f"submitting failed: {response.status_code} {response.text[:300]}")
        time.sleep(float(response.headers.get("retry-after", "1")))


def wait_ended(client: httpx.Client, batch_id: str, timeout: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        try:
            response = client.get(f"/v1/batches/{batch_id}", timeout=10)
            if response.status_code == 200 and response.json()["status"] in ENDED_BATCH_STATES:
                return time.monotonic() - started
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"batch {batch_id} did not end within {timeout:.0f}s")


def expected_texts(emulator_url: str) -> dict[str, str]:
    """What the emulator answered, by the request's text (each request's text is unique)."""
    calls = httpx.get(f"{emulator_url}/_emulator/requests", timeout=30).json()
    texts: dict[str, str] = {}
    for call in calls:
        if call["path"] != "/api/chat" or not isinstance(call["body"], dict):
            continue
        chat = parse_chat(call["body"])
        text = b"".join(answer_chunks(chat.seed, chat.cyrillic, CHUNKS, CHUNK_SIZE)).decode()
        texts[call["body"]["messages"][-1]["content"]] = text
    return texts


def check(
    db: Database, client: redis.Redis, batch_ids: list[str], texts: dict[str, str]
) -> list[str]:
    keys = RedisKeys(PREFIX)
    problems: list[str] = []
    total = 0
    for batch_id in batch_ids:
        for job in finished_jobs(db.read, batch_id, states=TERMINAL_JOB_STATES):
            total += 1
            asked = job.messages[-1]["content"]
            if job.status != "succeeded":
                problems.append(f"{job.custom_id}: {job.status} {job.error_code}")
            elif job.output != texts.get(asked):
                problems.append(f"{job.custom_id}: the output is not what the emulator sent")
            entries = [
                {_text(k): _text(v) for k, v in (fields or {}).items()}
                for _id, fields in client.xrange(keys.job_stream(batch_id, job.custom_id)) or []
            ]
            mine = [e for e in entries if e.get("attempt") == str(job.attempt)]
            text = "".join(e["text"] for e in mine if e["event"] == EV_CHUNK)
            ends = [e for e in entries if e["event"] == EV_DONE]
            if text != job.output or len(ends) != 1 or entries[-1]["event"] != EV_DONE:
                problems.append(
                    f"{job.custom_id}: its Redis stream is not whole ({len(ends)} ends)"
                )
    log(f"checked {total} jobs of {len(batch_ids)} batches")
    return problems


def main() -> None:  # noqa: C901 - one timeline, read top to bottom
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=2000, help="tenant a's requests (4 batches)")
    parser.add_argument("--fault-rate", type=float, default=0.05)
    parser.add_argument("--streams", type=int, default=200, help="streams per worker")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="aivfaults-"))
    procs = Processes(folder)
    postgres = start_postgres(folder / "pg")
    redis_server: EmbeddedRedis | None = None
    stop_probe = threading.Event()
    try:
        db_url = str(postgres.get_uri("postgres")).replace("postgresql://", "postgresql+psycopg://")
        upgrade(db_url)
        db = Database.from_url(db_url)
        with db.write() as session:
            key_a = create_key(session, "a", now=utcnow()).secret
            key_b = create_key(session, "b", now=utcnow()).secret
        redis_port = free_port()
        redis_server = EmbeddedRedis.start(log=folder / "redis.log", port=redis_port)
        emulator_port, api_port = free_port(), free_port()
        emulator_url = f"http://127.0.0.1:{emulator_port}"
        procs.spawn(
            [
                *(sys.executable, "-m", "emulator", "--host", "127.0.0.1"),
                *("--port", str(emulator_port), "--fault-rate", str(args.fault_rate)),
                *("--chunks", str(CHUNKS), "--chunk-size", str(CHUNK_SIZE)),
                *("--faults", "429,500,reset,stall", "--stall-seconds", "5"),
            ],
            "emulator.log",
        )
        wait_http(emulator_url + "/api/models")
        env = {k: v for k, v in os.environ.items() if not k.startswith("AIVBATCH_")}
        env.update(
            AIVBATCH_DATABASE_URL=db_url,
            AIVBATCH_REDIS_URL=redis_server.url,
            AIVBATCH_REDIS_PREFIX=PREFIX,
            AIVBATCH_AIVVM_URL=emulator_url,
            AIVBATCH_WORKER_STREAMS=str(args.streams),
            AIVBATCH_STALL_TIMEOUT="3",
            AIVBATCH_LEASE_SECONDS="10",
            AIVBATCH_DISPATCH_TIMEOUT="15",
            AIVBATCH_RETRY_BASE_DELAY="0.5",
            AIVBATCH_RETRY_MAX_DELAY="4",
            AIVBATCH_MAX_ATTEMPTS="10",
            PYTHONUNBUFFERED="1",
        )
        stack = Stack(procs, env, api_port)
        for name in ("api", "worker-1", "worker-2", "dispatcher-1", "dispatcher-2"):
            stack.start(name)
        api_url = f"http://127.0.0.1:{api_port}"
        wait_http(api_url + "/healthz", timeout=60)
        a = httpx.Client(base_url=api_url, headers={"Authorization": f"Bearer {key_a}"})
        b = httpx.Client(base_url=api_url, headers={"Authorization": f"Bearer {key_b}"})

        quiet = [wait_ended(b, submit(b, f"quiet{i}", 5, markers=SPARED), 120) for i in range(3)]
        log(f"tenant b's 5 requests on the quiet stack: median {statistics.median(quiet):.2f}s")

        batch_ids = [submit(a, f"a{i}", args.jobs // 4) for i in range(4)]
        probe = Probe()
        probing = threading.Thread(
            target=prober, args=(api_url, [key_a, key_b], batch_ids, probe, stop_probe)
        )
        probing.start()
        b_times: list[float] = []
        b_batches: list[str] = []

        def tenant_b(label: str) -> None:
            # Spared the upstream's random faults, so its time measures waiting, not retrying.
            batch = submit(b, f"b{len(b_batches)}", 5, markers=SPARED)
            b_batches.append(batch)
            b_times.append(wait_ended(b, batch, 300))
            log(f"tenant b's batch during {label}: {b_times[-1]:.2f}s")

        def fault(name: str, action: Callable[[], object]) -> None:
            probe.outage = name
            log(f"fault: {name}")
            action()
            time.sleep(3)
            probe.outage = "none"

        def restart_redis() -> None:
            assert redis_server is not None
            redis_server.proc.send_signal(signal.SIGKILL)
            redis_server.proc.wait(10)
            time.sleep(2)
            replacement = EmbeddedRedis.start(log=folder / "redis-2.log", port=redis_port)
            redis_server.proc = replacement.proc

        time.sleep(5)  # tenant a's work is under way on every worker
        tenant_b("the load")
        fault("worker SIGKILL", lambda: stack.restart("worker-1"))
        tenant_b("a killed worker")
        fault("Redis FLUSHALL", lambda: redis.Redis.from_url(env["AIVBATCH_REDIS_URL"]).flushall())
        fault("Redis restart", restart_redis)
        fault("PostgreSQL restart", lambda: restart_postgres(postgres, 5))
        tenant_b("after the outages")
        fault("dispatcher SIGKILL", lambda: stack.restart("dispatcher-1"))
        for batch_id in batch_ids:
            wait_ended(a, batch_id, 900)
        stop_probe.set()
        probing.join()
        time.sleep(8)  # the dispatcher's repair looks at jobs a few seconds after they end

        texts = expected_texts(emulator_url)
        client = redis.Redis.from_url(env["AIVBATCH_REDIS_URL"])
        problems = check(db, client, batch_ids + b_batches, texts)
        client.close()
        for outage, codes in probe.codes.items():
            shown = ", ".join(f"{code}: {n}" for code, n in sorted(codes.items()))
            log(f"API answers during {outage}: {shown}")
        log(
            f"tenant b's 5 requests: quiet median {statistics.median(quiet):.2f}s; during the "
            f"run {', '.join(f'{t:.2f}s' for t in b_times)} "
            f"(worst {max(b_times) / statistics.median(quiet):.1f}x quiet)"
        )
        problems += probe.bad
        for problem in problems[:30]:
            log(f"PROBLEM {problem}")
        log(f"{len(problems)} problems; logs in {folder}")
        a.close()
        b.close()
        db.dispose()
        sys.exit(1 if problems else 0)
    finally:
        stop_probe.set()
        procs.stop()
        if redis_server is not None:
            redis_server.stop()
        postgres.cleanup()


if __name__ == "__main__":
    main()
