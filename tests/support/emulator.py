"""The emulator as a real subprocess, for tests that need an upstream (either protocol).

Interface (kept stable; provider and pipeline tests rely on it):

- fixture ``emulator``: a factory. ``emulator(**options) -> EmulatorServer`` starts
  ``python -m emulator --host 127.0.0.1 --port <free port> <options as flags>``
  (``delay_ms=10`` becomes ``--delay-ms 10``; a list or tuple is joined with commas, e.g.
  ``faults=["429", "reset"]``, ``openai_models=["m1", "m2"]``), waits until it answers,
  and stops it by PID at teardown. Options: chunks, chunk_size, ttfb_ms, delay_ms,
  fault_rate, faults, fault_times, retry_after, stall_seconds, openai_models (served under
  ``/v1``), api_key (``/v1`` then needs ``Authorization: Bearer KEY``).
  ``AIVBATCH_EMULATOR_*`` variables of the calling environment are not passed on, so only
  the options given here apply.
- ``EmulatorServer``: ``.url`` (base URL, e.g. ``http://127.0.0.1:54321``; the OpenAI
  protocol is at ``.url + "/v1"``, also ``.openai_url``), ``.port``, ``.pid``,
  ``.stats() -> dict`` (``GET /_emulator/stats``: started, completed, faulted by kind,
  disconnected, rejected, in_flight, peak_in_flight, started_by_tag, completed_by_tag,
  by_protocol), ``.requests(limit=None) -> list[dict]`` (``GET /_emulator/requests``: the
  calls received, oldest first, each ``{path, method, headers, body, received_at}``),
  ``.wait_for_stats(predicate, timeout=5) -> dict`` (polls until ``predicate(stats)``),
  ``.reset()`` (zero the stats, the per-request fault counters and the calls recorded),
  ``.stop()`` (SIGTERM, then SIGKILL), ``.start()`` (start again on the same port),
  ``.log()`` (what it wrote). Also a context manager, for use outside pytest.
- ``marker(**kv) -> str``: the ``[[emulator k=v ...]]`` string to put in a message's
  text, e.g. ``marker(fault="429", times=1, tag="j1")``. Keys: chunks, chunk_size,
  ttfb_ms, delay_ms, fault (429, 500, 503, 400, 401, 403, html, reset, stall,
  error_event), times, retry_after, after, stall_seconds, tag; for ``/v1`` also sse (a
  list of crlf, comments, multiline, split), tool (1), cached_tokens, reasoning_tokens;
  see ``emulator.faults``.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
import pytest

from cli.embedded import free_port
from tests.support.wait import wait_until

ROOT = Path(__file__).resolve().parents[2]


def _flag_value(value: object) -> str:
    if isinstance(value, list | tuple | set | frozenset):
        return ",".join(str(v) for v in value)
    return str(value)


def marker(**kv: object) -> str:
    """The ``[[emulator key=value ...]]`` marker that configures one request."""
    parts = []
    for key, value in kv.items():
        text = _flag_value(value)
        if not text or any(c.isspace() or c in "[]" for c in text):
            raise ValueError(f"marker value of {key} must be non-empty, without spaces or []")
        parts.append(f"{key}={text}")
    return "[[emulator" + "".join(" " + p for p in parts) + "]]"


class EmulatorServer:
    """One emulator subprocess on a fixed port; restartable."""

    def __init__(
        self, options: dict[str, Any], port: int | None = None, log: Path | None = None
    ) -> None:
        self.options = dict(options)
        self._free_to_move = port is None
        self.port = port or free_port()
        if log is None:
            fd, name = tempfile.mkstemp(prefix="aivemu-", suffix=".log")
            os.close(fd)
            log = Path(name)
        self._log = log
        self._proc: subprocess.Popen[bytes] | None = None
        self._client: httpx.Client | None = None

    @property
    def url(self) -> str:
        """Base URL, without a trailing slash."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        """PID of the running process, if any."""
        return self._proc.pid if self._proc and self._proc.poll() is None else None

    def _argv(self) -> list[str]:
        argv = [sys.executable, "-m", "emulator", "--host", "127.0.0.1"]
        argv += ["--port", str(self.port)]
        for key, value in self.options.items():
            argv += ["--" + key.replace("_", "-"), _flag_value(value)]
        return argv

    def start(self, timeout: float = 20) -> EmulatorServer:
        """Start the process (again, on the same port) and wait until it answers."""
        if self.pid is not None:
            return self
        try:
            return self._start(timeout)
        except RuntimeError as exc:
            # Another process may have taken the free port between the probe and the bind.
            if not (self._free_to_move and "Address already in use" in str(exc)):
                raise
            self.stop()
            self.port = free_port()
            return self._start(timeout)

    def _start(self, timeout: float) -> EmulatorServer:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AIVBATCH_EMULATOR_")}
        with self._log.open("ab") as out:
            self._proc = subprocess.Popen(
                self._argv(), cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"the emulator exited ({self._proc.returncode}):\n{self.log()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    pass
                if self.http.get("/api/models").status_code == 200:
                    self._free_to_move = False  # restarts keep the port clients know
                    return self
            except (OSError, httpx.HTTPError):
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"the emulator did not answer within {timeout}s:\n{self.log()}")

    def stop(self, timeout: float = 5) -> None:
        """Stop the process by its PID: SIGTERM, then SIGKILL after ``timeout`` seconds."""
        if self._client is not None:
            self._client.close()
            self._client = None
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)

    @property
    def http(self) -> httpx.Client:
        """A client bound to the emulator (built once; closed by ``stop``)."""
        if self._client is None:
            self._client = httpx.Client(base_url=self.url, timeout=10)
        return self._client

    def stats(self) -> dict[str, Any]:
        """What the emulator has served since start or the last reset."""
        response = self.http.get("/_emulator/stats")
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    @property
    def openai_url(self) -> str:
        """Base URL of the OpenAI protocol (what ``OpenAI(base_url=...)`` takes)."""
        return self.url + "/v1"

    def requests(self, limit: int | None = None) -> list[dict[str, Any]]:
        """The calls received (the last ``limit``), oldest first."""
        params = {} if limit is None else {"limit": limit}
        response = self.http.get("/_emulator/requests", params=params)
        response.raise_for_status()
        result: list[dict[str, Any]] = response.json()
        return result

    def wait_for_stats(
        self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 5
    ) -> dict[str, Any]:
        """The stats once ``predicate`` holds for them; AssertionError after ``timeout``."""

        def matching() -> dict[str, Any] | None:
            stats = self.stats()
            return stats if predicate(stats) else None

        return wait_until(
            matching, timeout, "the emulator's stats to match", lambda: str(self.stats())
        )

    def reset(self) -> None:
        """Zero the stats, the per-request counters (``times``, rate faults), the calls."""
        self.http.post("/_emulator/reset").raise_for_status()

    def log(self) -> str:
        """Everything the process wrote to stdout and stderr."""
        return self._log.read_text(errors="replace") if self._log.exists() else ""

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[Callable[..., EmulatorServer]]:
    """Factory of running emulators; each is stopped at teardown."""
    made: list[EmulatorServer] = []

    def make(**options: Any) -> EmulatorServer:
        server = EmulatorServer(options, log=tmp_path / f"emulator-{len(made)}.log")
        made.append(server)
        return server.start()

    yield make
    for server in made:
        server.stop()
