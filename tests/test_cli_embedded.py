"""The embedded redis-server and the child-process supervisor leave no process behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis

from cli.embedded import EmbeddedRedis, free_port, redis_answers
from cli.processes import Supervisor

ROOT = Path(__file__).resolve().parents[1]


def alive(pid: int) -> bool:
    """Whether a process exists and is not a zombie waiting to be reaped."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")


def wait_dead(pid: int, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_nothing_answers_on_a_closed_port() -> None:
    assert not redis_answers(f"redis://127.0.0.1:{free_port()}/0", timeout=0.5)


def test_embedded_redis_serves_and_stops(tmp_path: Path) -> None:
    with EmbeddedRedis.start(log=tmp_path / "redis.log") as server:
        assert server.url.startswith("redis://127.0.0.1:")
        client = redis.Redis.from_url(server.url)
        client.xadd("s", {"event": "chunk", "text": "Привет"})
        assert client.xlen("s") == 1
        assert client.config_get("appendonly") == {"appendonly": "no"}
        client.close()
        pid = server.pid
        assert alive(pid)
    assert not alive(pid)
    assert not redis_answers(server.url, timeout=0.5)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_embedded_redis_dies_with_a_killed_parent(tmp_path: Path) -> None:
    # The parent is SIGKILLed, so it cannot stop the server: the kernel must.
    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from cli.embedded import EmbeddedRedis\n"
            "s = EmbeddedRedis.start()\n"
            "print(s.pid, flush=True)\n"
            "time.sleep(60)\n",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert parent.stdout is not None
        pid = int(parent.stdout.readline())
        assert alive(pid)
    finally:
        parent.kill()
        parent.wait()
        parent.stdout.close()  # type: ignore[union-attr]
    assert wait_dead(pid), f"redis-server {pid} outlived its killed parent"


def test_supervisor_stops_every_child_even_one_ignoring_sigterm(tmp_path: Path) -> None:
    sup = Supervisor(dict(os.environ), tmp_path / "logs")
    polite = sup.start("polite", [sys.executable, "-c", "import time; time.sleep(60)"])
    stubborn = sup.start(
        "stubborn",
        [
            sys.executable,
            "-c",
            "import signal, time\n"
            "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
            "print('ready', flush=True)\n"
            "time.sleep(60)\n",
        ],
    )
    deadline = time.monotonic() + 10
    while "ready" not in stubborn.tail() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sup.dead() is None
    started = time.monotonic()
    sup.stop(timeout=1)
    assert time.monotonic() - started < 5
    assert polite.proc.returncode == -signal.SIGTERM
    assert stubborn.proc.returncode == -signal.SIGKILL
    assert not any(alive(pid) for pid in sup.pids)


def test_supervisor_reports_a_child_that_died(tmp_path: Path) -> None:
    sup = Supervisor(dict(os.environ), tmp_path / "logs")
    child = sup.start("crash", [sys.executable, "-c", "raise SystemExit('boom')"])
    child.proc.wait(10)
    assert sup.dead() is child
    assert "boom" in child.tail()
    sup.stop()
    assert sup.dead() is None
