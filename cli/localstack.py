"""The whole service on one machine, as child processes: what `aivbatch up` and `demo` run.

Whatever is not configured is provided: an embedded redis-server when no Redis answers at
``AIVBATCH_REDIS_URL``, the Aivvm emulator when ``AIVBATCH_AIVVM_URL`` is unset, and the
default SQLite file. The children get the resulting URLs through their environment.
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass, field

import httpx

from cli.embedded import EmbeddedRedis, free_port, redis_answers
from cli.processes import Child, Supervisor
from cli.schema import upgrade
from cli.services import api_argv
from models.settings import Settings

START_TIMEOUT = 30.0


class StackError(Exception):
    """A part of the stack did not start; the message says which and why."""


@dataclass
class StackOptions:
    """What to run and where."""

    host: str = "127.0.0.1"
    port: int = 8000
    emulator_port: int = 0
    emulator_args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)


@dataclass
class LocalStack:
    """Where each part of a started stack listens, and what was provided for it."""

    api_url: str = ""
    redis_url: str = ""
    redis_embedded: bool = False
    aivvm_url: str = ""
    emulated: bool = False
    sql_url: str = ""
    notes: list[str] = field(default_factory=list)


def child_env(settings: Settings, extra: dict[str, str]) -> dict[str, str]:
    """This process's environment for the children, with an absolute data folder."""
    env = dict(os.environ)
    env["AIVBATCH_DATA_DIR"] = str(settings.data_dir.resolve())
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def start_stack(settings: Settings, sup: Supervisor, options: StackOptions) -> LocalStack:
    """Start Redis and the emulator if needed, migrate, then the API, a worker, the dispatcher.

    Children are handed to ``sup`` as they start, so the caller stops them all in every case.
    """
    stack = LocalStack(sql_url=settings.sql_url, redis_url=settings.redis_url)
    if not redis_answers(settings.redis_url):
        server = EmbeddedRedis.start(log=sup.log_dir / "redis.log")
        sup.adopt("redis", server.proc, sup.log_dir / "redis.log")
        stack.redis_url, stack.redis_embedded = server.url, True
        sup.env["AIVBATCH_REDIS_URL"] = server.url
        stack.notes.append(
            f"no Redis answered at {settings.redis_url}: started an embedded redis-server"
            f" (pid {server.pid}) at {server.url}"
        )
    if settings.aivvm_url:
        stack.aivvm_url = settings.aivvm_url
    else:
        port = options.emulator_port or free_port()
        emulator = sup.start_module(
            "emulator",
            "emulator",
            *("--host", "127.0.0.1", "--port", str(port), *options.emulator_args),
        )
        stack.aivvm_url, stack.emulated = f"http://127.0.0.1:{port}", True
        sup.env["AIVBATCH_AIVVM_URL"] = stack.aivvm_url
        _wait_for_port(emulator, port)
        stack.notes.append(
            f"AIVBATCH_AIVVM_URL is not set: the upstream is the Aivvm emulator (a stand-in,"
            f" not the real service) at {stack.aivvm_url}; set AIVBATCH_AIVVM_URL for the children"
        )
    upgrade(settings.sql_url)
    port = options.port or free_port()
    api = sup.start_module("api", "uvicorn", *api_argv(options.host, port))
    sup.start_module("worker", "worker")
    sup.start_module("dispatcher", "worker.dispatcher")
    host = "127.0.0.1" if options.host in ("0.0.0.0", "::") else options.host
    stack.api_url = f"http://{host}:{port}"
    wait_for_api(api, stack.api_url)
    return stack


def _wait_for_port(child: Child, port: int) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        _check_alive(child)
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise StackError(f"{child.name} did not listen on port {port} within {START_TIMEOUT:.0f}s")


def wait_for_api(child: Child, url: str) -> None:
    """Wait until the API answers /healthz."""
    deadline = time.monotonic() + START_TIMEOUT
    with httpx.Client(base_url=url, timeout=2.0) as client:
        while time.monotonic() < deadline:
            _check_alive(child)
            try:
                if client.get("/healthz").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
    raise StackError(f"the API did not answer {url}/healthz within {START_TIMEOUT:.0f}s")


def _check_alive(child: Child) -> None:
    code = child.proc.poll()
    if code is not None:
        raise StackError(f"{child.name} exited with code {code}:\n{child.tail()}")
