"""The client commands against a running stack: real API, workers, Redis, SQL and HTTP."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from cli.embedded import free_port
from models.rediskeys import RedisKeys
from tests.support.api import ApiServer
from tests.support.stack import Stack
from tests.support.wait import wait_until

AIVBATCH = str(Path(sys.executable).with_name("aivbatch"))
ROOT = Path(__file__).resolve().parents[1]
HELLO = "Привет! Как дела?"


@dataclass
class Cli:
    """Runs `aivbatch` with one environment."""

    env: dict[str, str]
    cwd: Path

    def run(self, *args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [AIVBATCH, *args],
            env=self.env,
            cwd=self.cwd,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def ok(self, *args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
        done = self.run(*args, timeout=timeout)
        assert done.returncode == 0, f"{args}: {done.returncode}\n{done.stdout}\n{done.stderr}"
        return done

    def batch(self, batch_id: str) -> dict[str, object]:
        obj: dict[str, object] = json.loads(self.ok("status", batch_id, "--json").stdout)
        return obj


def one_line_error(done: subprocess.CompletedProcess[str]) -> str:
    """The error a failed command printed, checked to be one line with no traceback."""
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    return lines[0]


@pytest.fixture
def running(
    stack: Callable[..., Stack],
    api_server: Callable[[dict[str, str]], ApiServer],
    redis_url: str,
    redis_prefix: str,
    tmp_path: Path,
) -> Callable[..., tuple[Cli, ApiServer]]:
    """A stack with an API (auth on) and a CLI holding a key of tenant t1."""

    def make(database_url: str, **options: object) -> tuple[Cli, ApiServer]:
        pipeline = stack(
            database_url=database_url, redis_url=redis_url, prefix=redis_prefix, **options
        )
        env = {**pipeline.env, "AIVBATCH_AUTH_ENABLED": "true"}
        made = subprocess.run(
            [AIVBATCH, "keys", "create", "--tenant", "t1"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        server = api_server(env)
        cli_env = {**env, "AIVBATCH_API_URL": server.url, "AIVBATCH_API_KEY": made.stdout.strip()}
        return Cli(cli_env, tmp_path), server

    return make


@pytest.mark.slow
def test_submit_watch_status_results_list(
    running: Callable[..., tuple[Cli, ApiServer]], database_url: str, tmp_path: Path
) -> None:
    cli, _server = running(database_url, delay_ms=10, ttfb_ms=10)

    bad = tmp_path / "bad.jsonl"
    good_line = {"custom_id": "a", "messages": [{"role": "user", "content": "hi"}]}
    bad.write_text(
        "\n".join(
            [
                json.dumps(good_line),
                "{not json",
                json.dumps({**good_line, "custom_id": "b"}),
                json.dumps({"custom_id": "c", "messages": []}),
            ]
        )
    )
    refused = cli.run("submit", str(bad))
    assert refused.returncode == 1
    assert "line 2:" in refused.stderr and "line 4:" in refused.stderr
    assert "line 1:" not in refused.stderr and "nothing was sent" in refused.stderr
    assert "no batches" in cli.ok("list").stderr  # nothing reached the API

    prompts = tmp_path / "prompts.txt"
    prompts.write_text(f"{HELLO}\nWhat is 2 + 2?\n\nName a colour.\n", encoding="utf-8")
    watched = cli.run("submit", str(prompts), "--metadata", "project=cli-test", "--watch")
    assert watched.returncode == 0, watched.stdout + watched.stderr
    batch_id = watched.stdout.splitlines()[0]
    assert batch_id.startswith("batch_")
    assert f"batch {batch_id} completed: 3 succeeded" in watched.stdout

    batch = cli.batch(batch_id)
    assert batch["status"] == "completed" and batch["metadata"] == {"project": "cli-test"}
    assert batch["counts"] == {
        "queued": 0,
        "running": 0,
        "succeeded": 3,
        "failed": 0,
        "cancelled": 0,
        "expired": 0,
    }
    shown = cli.ok("status", batch_id).stdout
    assert batch_id in shown and "completed" in shown and "succeeded" in shown
    assert "project=cli-test" in shown and "usage:" in shown

    out = tmp_path / "results.jsonl"
    saved = cli.ok("results", batch_id, "-o", str(out))
    assert f"wrote 3 results to {out}" in saved.stdout
    lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [job["custom_id"] for job in lines] == ["line-1", "line-2", "line-4"]
    assert all(job["status"] == "succeeded" and job["output"] for job in lines)
    assert not out.with_name("results.jsonl.partial").exists()
    piped = cli.ok("results", batch_id, "-o", "-", "--order", "custom_id")
    assert "wrote 3 results to stdout" in piped.stderr
    assert [json.loads(line)["custom_id"] for line in piped.stdout.splitlines()] == [
        "line-1",
        "line-2",
        "line-4",
    ]

    openai_file = tmp_path / "openai.jsonl"
    openai_file.write_text(
        "\n".join(
            json.dumps(
                {
                    "custom_id": f"r{i}",
                    "method": "POST",
                    "url": "/v1/chat/completions",
                    "body": {"messages": [{"role": "user", "content": f"Question {i}"}]},
                }
            )
            for i in range(2)
        )
    )
    submitted = cli.ok("submit", str(openai_file), "--model", "gpt-4", "--window", "1h")
    second = submitted.stdout.strip()
    assert second.startswith("batch_") and "\n" not in second  # the id alone on stdout
    assert "2 requests (openai)" in submitted.stderr
    assert cli.ok("watch", second).returncode == 0
    assert cli.batch(second)["completion_window"] == "1h"
    models = {
        json.loads(line)["model"]
        for line in cli.ok("results", second, "-o", "-").stdout.splitlines()
    }
    assert models == {"gpt-4"}

    listed = cli.ok("list").stdout
    assert batch_id in listed and second in listed
    assert listed.index(second) < listed.index(batch_id)  # newest first
    assert batch_id in cli.ok("list", "--status", "completed").stdout
    assert "no batches" in cli.ok("list", "--status", "cancelled").stderr
    limited = cli.ok("list", "--limit", "1")
    assert second in limited.stdout and batch_id not in limited.stdout
    assert f"--after {second}" in limited.stderr


@pytest.mark.slow
def test_cancel_and_what_other_keys_see(
    running: Callable[..., tuple[Cli, ApiServer]], tmp_path: Path
) -> None:
    cli, _server = running(f"sqlite:///{tmp_path / 'cancel.db'}", delay_ms=300, chunks=60)
    prompts = tmp_path / "slow.txt"
    prompts.write_text("\n".join(f"Slow question {i}" for i in range(4)))
    batch_id = cli.ok("submit", str(prompts)).stdout.strip()

    cancelled = cli.ok("cancel", batch_id)
    assert batch_id in cancelled.stdout
    assert "cancelling" in cancelled.stdout or "cancelled" in cancelled.stdout
    watched = cli.run("watch", batch_id, timeout=60)
    assert watched.returncode == 3, watched.stdout + watched.stderr  # ended, not completed
    assert f"batch {batch_id} cancelled" in watched.stdout
    assert cli.batch(batch_id)["status"] == "cancelled"
    jobs = [json.loads(line) for line in cli.ok("results", batch_id, "-o", "-").stdout.splitlines()]
    assert len(jobs) == 4 and {job["status"] for job in jobs} == {"cancelled"}
    assert "HTTP 409" in one_line_error(cli.run("cancel", batch_id))

    made = subprocess.run(
        [AIVBATCH, "keys", "create", "--tenant", "t2"],
        env=cli.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    stranger = Cli({**cli.env, "AIVBATCH_API_KEY": made.stdout.strip()}, tmp_path)
    assert "HTTP 404" in one_line_error(stranger.run("status", batch_id))
    assert "HTTP 404" in one_line_error(stranger.run("results", batch_id, "-o", "-"))
    assert "no batches" in stranger.ok("list").stderr
    nobody = Cli({**cli.env, "AIVBATCH_API_KEY": "aivb-not-a-key"}, tmp_path)
    assert "HTTP 401" in one_line_error(nobody.run("list"))
    assert "HTTP 404" in one_line_error(cli.run("status", "batch_does_not_exist"))


@pytest.mark.slow
def test_watch_survives_an_api_restart(
    running: Callable[..., tuple[Cli, ApiServer]],
    tmp_path: Path,
    redis_url: str,
    redis_prefix: str,
) -> None:
    cli, server = running(
        f"sqlite:///{tmp_path / 'restart.db'}",
        settings={"WORKER_STREAMS": "2"},
        delay_ms=80,
        chunks=30,
    )
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("\n".join(f"Question {i}" for i in range(12)))
    batch_id = cli.ok("submit", str(prompts)).stdout.strip()
    watcher = subprocess.Popen(
        [AIVBATCH, "watch", batch_id],
        env=cli.env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    client = redis.Redis.from_url(redis_url)
    streams = RedisKeys(redis_prefix).tenant_streams("t1")
    try:
        # The watcher follows the batch (its event streams hold the tenant's slots), and the
        # batch is not done.
        api = server.client(cli.env["AIVBATCH_API_KEY"])
        wait_until(
            lambda: (
                client.zcard(streams) >= 1
                and api.get(f"/v1/batches/{batch_id}").json()["counts"]["succeeded"] < 12
            ),
            timeout=30,
            every=0.05,
            what="the watcher to follow a batch under way",
        )
        # The event streams drop mid-batch: killed, the API cannot finish them first.
        assert server.proc is not None
        server.proc.kill()
        server.stop()
        before_restart = len(server.text())
        server.start()
        stdout, stderr = watcher.communicate(timeout=90)
    finally:
        client.close()
        if watcher.poll() is None:
            watcher.kill()
            watcher.communicate()
    assert watcher.returncode == 0, stdout + stderr
    assert f"batch {batch_id} completed: 12 succeeded" in stdout
    # It got there by reconnecting: the restarted API served its batch's events.
    after_restart = server.text()[before_restart:]
    assert f"GET /v1/batches/{batch_id}/events 200" in after_restart, after_restart


def test_an_unreachable_api_is_one_line_and_exit_1(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIVBATCH_")}
    cli = Cli({**env, "AIVBATCH_API_URL": url}, tmp_path)
    prompts = tmp_path / "p.txt"
    prompts.write_text("hello\n")
    out = tmp_path / "r.jsonl"
    for args in (
        ("submit", str(prompts)),
        ("status", "batch_x"),
        ("list",),
        ("watch", "batch_x"),
        ("results", "batch_x", "-o", str(out)),
        ("cancel", "batch_x"),
    ):
        error = one_line_error(cli.run(*args, timeout=30))
        assert url in error, error
    assert not out.exists() and not list(tmp_path.glob("*.partial"))
    flag = cli.run("status", "batch_x", "--api-url", "not a url", timeout=30)
    one_line_error(flag)


def test_a_bad_file_names_its_lines_and_sends_nothing(tmp_path: Path) -> None:
    # The API URL answers nothing: had the command tried to send, it would say so.
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIVBATCH_")}
    cli = Cli({**env, "AIVBATCH_API_URL": f"http://127.0.0.1:{free_port()}"}, tmp_path)
    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        '{"custom_id": "a", "messages": [{"role": "user", "content": "hi"}]}\n'
        '{"custom_id": "a", "messages": [{"role": "user", "content": "again"}]}\n'
        '{"custom_id": "b", "messages": [{"role": "robot", "content": "x"}]}\n'
    )
    done = cli.run("submit", str(bad))
    assert done.returncode == 1 and done.stdout == ""
    assert f"{bad}: line 2: custom_id 'a' is already used on line 1" in done.stderr
    assert f"{bad}: line 3: messages[0].role" in done.stderr
    assert "nothing was sent" in done.stderr and "127.0.0.1" not in done.stderr
    missing = one_line_error(cli.run("submit", str(tmp_path / "missing.jsonl")))
    assert "missing.jsonl" in missing
    fine = tmp_path / "fine.txt"
    fine.write_text(f"{HELLO}\n", encoding="utf-8")
    assert "127.0.0.1" in one_line_error(cli.run("submit", str(fine)))  # this one is sent
