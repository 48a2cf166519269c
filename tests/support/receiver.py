"""A real webhook receiver for the tests: an HTTP server on 127.0.0.1 in a thread.

``receiver(*script) -> Receiver``: each POST is recorded (headers, body, time) and answered
by the next step of ``script``: an HTTP status, or ``HANG`` to hold the request open until
``release()`` (as a receiver that never answers); once the script is used up, 200.
Signatures are checked by the tests themselves, with the ``standardwebhooks`` package.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook

HANG = "hang"


@dataclass(frozen=True)
class Received:
    """One request the receiver got."""

    path: str
    headers: dict[str, str]
    body: bytes
    at: float

    def verify(self, secret: str) -> Any:
        """The payload, if the Standard Webhooks signature checks out with ``secret``."""
        return Webhook(secret).verify(self.body, self.headers)


@dataclass
class Receiver:
    """A scripted receiver and what it has received."""

    script: list[int | str]
    received: list[Received] = field(default_factory=list)
    released: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        """Where it listens."""
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def release(self) -> None:
        """Let held requests go (they are answered 200 if the sender is still there)."""
        self.released.set()

    def count(self) -> int:
        """How many requests have arrived."""
        with self.lock:
            return len(self.received)

    def _answer(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("content-length", 0))
        body = handler.rfile.read(length)
        with self.lock:
            self.received.append(
                Received(handler.path, dict(handler.headers.items()), body, time.time())
            )
            step = self.script.pop(0) if self.script else 200
        if step == HANG:
            self.released.wait(60)
            step = 200
        handler.send_response(int(step))
        handler.send_header("content-length", "2")
        handler.end_headers()
        handler.wfile.write(b"ok")

    def start(self) -> Receiver:
        """Listen on a free port of 127.0.0.1."""
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                try:
                    owner._answer(self)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the sender went away (the tests kill it on purpose)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        """Stop listening."""
        self.release()
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Callable[..., Receiver]]:
    """Factory of running receivers; each is stopped at teardown."""
    made: list[Receiver] = []

    def make(*script: int | str) -> Receiver:
        made.append(Receiver(list(script)).start())
        return made[-1]

    yield make
    for item in made:
        item.stop()
