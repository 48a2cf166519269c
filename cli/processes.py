"""Child processes of `aivbatch up` and `aivbatch demo`: started in order, stopped in reverse.

Children run in sessions of their own, so a Ctrl-C in the terminal reaches only the
supervisor, which then stops them in order (the API and workers before the Redis they use):
SIGTERM, a grace period, SIGKILL for stragglers. On Linux each child also gets SIGTERM
from the kernel if the supervisor itself is killed, so nothing outlives it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
PR_SET_PDEATHSIG = 1


def orphan_guard() -> Callable[[], None] | None:
    """A ``preexec_fn`` asking Linux to SIGTERM the child when its parent dies; else None."""
    if not sys.platform.startswith("linux"):
        return None
    libc_name = ctypes.util.find_library("c")
    if libc_name is None:
        return None
    # Loaded before the fork: the child only makes the one system call.
    prctl = ctypes.CDLL(libc_name, use_errno=True).prctl

    def guard() -> None:
        prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM))

    return guard


def end_process(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> int:
    """SIGTERM, wait up to ``timeout`` seconds, SIGKILL if still there; returns the exit code."""
    if proc.poll() is None:
        try:
            proc.terminate()
            return proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
    return proc.wait(10)


@dataclass
class Child:
    """One child process and where its output goes."""

    name: str
    proc: subprocess.Popen[bytes]
    log: Path | None = None
    expected_exit: bool = False

    @property
    def pid(self) -> int:
        """The child's process id."""
        return self.proc.pid

    def tail(self, lines: int = 20) -> str:
        """The last lines the child printed."""
        if self.log is None or not self.log.exists():
            return ""
        text = self.log.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])


class Supervisor:
    """Starts children with one environment and stops every one of them."""

    def __init__(self, env: dict[str, str], log_dir: Path, cwd: Path | None = None) -> None:
        self.env = env
        self.log_dir = log_dir
        self.cwd = cwd
        self.children: list[Child] = []
        log_dir.mkdir(parents=True, exist_ok=True)

    def start(self, name: str, args: list[str]) -> Child:
        """Start ``args`` with its output in ``<log_dir>/<name>.log`` (rewritten each run)."""
        log = self.log_dir / f"{name}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                args,
                env=self.env,
                cwd=self.cwd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=orphan_guard(),
            )
        return self.adopt(name, proc, log)

    def start_module(self, name: str, module: str, *args: str) -> Child:
        """Start ``python -m module args`` with this interpreter."""
        return self.start(name, [sys.executable, "-m", module, *args])

    def adopt(self, name: str, proc: subprocess.Popen[bytes], log: Path | None = None) -> Child:
        """Take charge of a process started elsewhere (it is stopped with the others)."""
        child = Child(name, proc, log)
        self.children.append(child)
        return child

    def dead(self) -> Child | None:
        """The first child that ended without being asked to, if any."""
        for child in self.children:
            if not child.expected_exit and child.proc.poll() is not None:
                return child
        return None

    def stop(self, timeout: float = 15.0) -> None:
        """Stop every child, the last started first; signals are held off meanwhile."""
        with signals_ignored():
            for child in reversed(self.children):
                child.expected_exit = True
                end_process(child.proc, timeout)

    @property
    def pids(self) -> list[int]:
        """Process ids of every child, in start order."""
        return [c.pid for c in self.children]


class StopRequested(Exception):
    """SIGTERM or SIGHUP arrived; raised in the main thread like KeyboardInterrupt."""


@contextmanager
def stop_on_signals() -> Iterator[None]:
    """Turn SIGTERM and SIGHUP into ``StopRequested`` (SIGINT is KeyboardInterrupt already)."""

    def _raise(signum: int, _frame: FrameType | None) -> None:
        raise StopRequested(signal.Signals(signum).name)

    previous = {sig: signal.signal(sig, _raise) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextmanager
def signals_ignored() -> Iterator[None]:
    """Ignore stop signals, so a second Ctrl-C cannot cut a clean shutdown short."""
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
