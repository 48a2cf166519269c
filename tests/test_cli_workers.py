"""`aivbatch worker --processes N`: real worker processes, replaced when one dies, all stopped
by one SIGTERM; a worker that keeps dying is restarted ever more slowly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cli.workerpool import STOP_SECONDS, WorkerPool
from models.migrate import upgrade
from tests.support.stack import service_env
from tests.support.wait import wait_until

pytestmark = pytest.mark.slow


def children(pid: int) -> set[int]:
    """The live (not zombie) children of a process."""
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            found.update(int(p) for p in (task / "children").read_text().split())
        except FileNotFoundError:
            continue
    return {p for p in found if alive(p)}


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def test_a_killed_worker_is_replaced_and_sigterm_stops_them_all(
    tmp_path: Path, redis_url: str, redis_prefix: str
) -> None:
    database_url = f"sqlite:///{tmp_path / 'pool.db'}"
    upgrade(database_url)
    env = service_env(database_url=database_url, redis_url=redis_url, prefix=redis_prefix)
    log = tmp_path / "pool.log"
    with log.open("wb") as out:
        pool = subprocess.Popen(
            [sys.executable, "-c", "from cli.main import main; main()", "worker", "--processes=2"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )

    def tail() -> str:
        return log.read_text(errors="replace")[-4000:]

    try:

        def both() -> set[int] | None:
            now = children(pool.pid)
            return now if len(now) == 2 else None

        def both_ready() -> set[int] | None:
            # Both workers past their start (a start can fail on a busy machine and be
            # retried by the pool), so the one killed below is the only one replaced.
            return both() if log.read_text(errors="replace").count(" ready: ") >= 2 else None

        first = wait_until(both_ready, 60, "two worker processes ready", tail)
        killed = min(first)
        os.kill(killed, signal.SIGKILL)

        def replacement() -> set[int] | None:
            now = both()
            return now if now is not None and killed not in now else None

        replaced = wait_until(replacement, 30, "the killed worker replaced by a new process", tail)
        assert first - {killed} < replaced
        everyone = first | replaced
        pool.send_signal(signal.SIGTERM)
        assert pool.wait(STOP_SECONDS + 15) == 0, tail()
    finally:
        if pool.poll() is None:
            pool.kill()
            pool.wait(10)
    assert not [pid for pid in everyone if alive(pid)], tail()
    assert f"(pid {killed}) exited with signal SIGKILL" in tail()


def test_a_worker_that_keeps_dying_is_restarted_ever_more_slowly() -> None:
    starts: list[float] = []

    def log(line: str) -> None:
        if " started " in line:
            starts.append(time.monotonic())

    pool = WorkerPool(1, [sys.executable, "-c", "raise SystemExit(3)"], log=log)
    try:

        def started_thrice() -> bool:
            pool.check()
            return len(starts) >= 3

        wait_until(started_thrice, 30, "three starts", every=0.05)
    finally:
        pool.stop(timeout=5)
    # One second after the first quick death, two after the second: no spinning.
    assert starts[1] - starts[0] >= 1.0 and starts[2] - starts[1] >= 2.0, starts
