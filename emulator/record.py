"""What the emulator received, for tests (``GET /_emulator/requests``): a bounded ring."""

from __future__ import annotations

import time
from collections import deque
from typing import Any

# Enough for any test; bounded so a benchmark's hundred thousand calls cost a few MB at most.
RING_SIZE = 10_000


class RequestLog:
    """The most recent protocol calls as received: path, method, headers, parsed body, and the
    client's address (its port tells which connection carried the call)."""

    def __init__(self, size: int = RING_SIZE) -> None:
        self._ring: deque[dict[str, Any]] = deque(maxlen=size)

    def add(self, scope: dict[str, Any], body: Any) -> None:
        """Record one call; ``body`` is its parsed JSON (None when absent or not JSON)."""
        headers: dict[str, str] = {}
        for raw_name, raw_value in scope["headers"]:
            name, value = raw_name.decode("latin-1").lower(), raw_value.decode("latin-1")
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        self._ring.append(
            {
                "path": scope["path"],
                "method": scope["method"],
                "headers": headers,
                "body": body,
                "client": list(scope.get("client") or ()),
                "received_at": time.time(),
            }
        )

    def recent(self, limit: int | None = None) -> list[dict[str, Any]]:
        """The last ``limit`` calls (all kept when None), oldest first."""
        if limit is None or limit >= len(self._ring):
            return list(self._ring)
        return list(self._ring)[len(self._ring) - limit :] if limit else []

    def clear(self) -> None:
        """Forget every recorded call."""
        self._ring.clear()
