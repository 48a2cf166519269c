"""`aivbatch worker --processes N`: a host's worth of worker processes, kept running.

One worker process holds its streams on one event loop, so one core; a host runs one per
core. The pool starts N ``python -m worker`` children and restarts one that dies: at once
if it had run a while, else after a delay that doubles with each quick death (up to
RESTART_MAX_SECONDS), so a worker that cannot start (a wrong database URL) does not spin.
SIGTERM, SIGINT or SIGHUP stops them all: each gets SIGTERM and its own grace to finish or
hand back its streams (worker/runtime.py), then SIGKILL. Children run in sessions of their
own (a Ctrl-C reaches the pool, which stops them in order) and get SIGTERM from Linux if
the pool itself is killed.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import typer

from cli.processes import STOP_SIGNALS, orphan_guard, signals_ignored

# A worker's own stop takes up to 10 s (its grace) and a little for Celery and the
# interpreter; past this, it is killed (leases bring its jobs back).
STOP_SECONDS = 15.0
# A worker that ran this long before dying is restarted at once; one that died sooner,
# after a delay from RESTART_MIN_SECONDS doubling up to RESTART_MAX_SECONDS.
STABLE_SECONDS = 30.0
RESTART_MIN_SECONDS = 1.0
RESTART_MAX_SECONDS = 30.0
POLL_SECONDS = 0.2


@dataclass
class Slot:
    """One of the pool's places: the process in it, and how its recent deaths went."""

    number: int
    proc: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    quick_deaths: int = 0
    start_at: float = 0.0  # when an empty slot is filled again


class WorkerPool:
    """N worker processes: started, restarted when they die, stopped together."""

    def __init__(
        self,
        count: int,
        argv: list[str] | None = None,
        *,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.argv = argv or [sys.executable, "-m", "worker"]
        self.slots = [Slot(n) for n in range(count)]
        self._log = log or (lambda line: typer.echo(line, err=True))

    @property
    def pids(self) -> list[int]:
        """Process ids of the workers running now."""
        return [s.proc.pid for s in self.slots if s.proc is not None]

    def _start(self, slot: Slot) -> None:
        slot.proc = subprocess.Popen(
            self.argv, stdin=subprocess.DEVNULL, start_new_session=True, preexec_fn=orphan_guard()
        )
        slot.started = time.monotonic()
        self._log(f"aivbatch worker: process {slot.number + 1} started (pid {slot.proc.pid})")

    def check(self) -> None:
        """Notice workers that died; start those whose restart delay has passed."""
        now = time.monotonic()
        for slot in self.slots:
            if slot.proc is not None and (code := slot.proc.poll()) is not None:
                ran = now - slot.started
                slot.quick_deaths = 0 if ran >= STABLE_SECONDS else slot.quick_deaths + 1
                delay = 0.0
                if slot.quick_deaths:
                    delay = min(
                        RESTART_MAX_SECONDS, RESTART_MIN_SECONDS * 2 ** (slot.quick_deaths - 1)
                    )
                slot.start_at = now + delay
                self._log(
                    f"aivbatch worker: process {slot.number + 1} (pid {slot.proc.pid}) exited "
                    f"with {_exit_text(code)} after {ran:.0f}s; restarting in {delay:.0f}s"
                )
                slot.proc = None
            if slot.proc is None and now >= slot.start_at:
                self._start(slot)

    def stop(self, timeout: float = STOP_SECONDS) -> None:
        """SIGTERM every worker, wait up to ``timeout`` seconds for all, SIGKILL the rest."""
        running = [s.proc for s in self.slots if s.proc is not None]
        for proc in running:
            if proc.poll() is None:
                proc.terminate()
        deadline = time.monotonic() + timeout
        for proc in running:
            try:
                proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self._log(f"aivbatch worker: pid {proc.pid} did not stop in time; killing it")
                proc.kill()
                proc.wait(10)
        for slot in self.slots:
            slot.proc = None

    def run(self) -> None:
        """Keep the pool full until a stop signal, then stop every worker."""
        # A flag, not an exception: a signal landing mid-start must not lose a child.
        stopping = threading.Event()
        previous = {sig: signal.signal(sig, lambda *_: stopping.set()) for sig in STOP_SIGNALS}
        try:
            while not stopping.is_set():
                self.check()
                stopping.wait(POLL_SECONDS)
        finally:
            with signals_ignored():
                self.stop()
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def _exit_text(code: int) -> str:
    if code < 0:
        return f"signal {signal.Signals(-code).name}"
    return f"code {code}"
