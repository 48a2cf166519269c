"""SQL or Redis unavailable: one log line when an outage starts, one when it ends.

Requests that need the missing service answer 503 (api/errors.py); this only keeps
count, so the log holds two lines per outage instead of a traceback per request.
"""

from __future__ import annotations

import logging
import threading
import time

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy import exc as sql_errors

log = logging.getLogger(__name__)

SQL = "SQL"
REDIS = "Redis"
# What a 503 asks the caller to wait; a restarting server is usually back within seconds.
RETRY_AFTER_SECONDS = 2

# Errors that say "the service is not there right now", not "this request is wrong".
SQL_UNAVAILABLE: tuple[type[Exception], ...] = (
    sql_errors.OperationalError,
    sql_errors.InterfaceError,
    sql_errors.DisconnectionError,
    sql_errors.TimeoutError,
)
REDIS_UNAVAILABLE: tuple[type[Exception], ...] = (
    RedisConnectionError,
    RedisTimeoutError,
    ConnectionError,
    TimeoutError,
)


def service_of(exc: BaseException) -> str | None:
    """Which service an error says is unavailable, if any."""
    if isinstance(exc, SQL_UNAVAILABLE):
        return SQL
    if isinstance(exc, REDIS_UNAVAILABLE):
        return REDIS
    return None


class Outages:
    """Which services are down, since when, and how many answers that cost."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._since: dict[str, float] = {}
        self._refused: dict[str, int] = {}

    def down(self, service: str, exc: BaseException) -> None:
        """A request found ``service`` unavailable."""
        with self._lock:
            first = service not in self._since
            self._since.setdefault(service, time.monotonic())
            self._refused[service] = self._refused.get(service, 0) + 1
        if first:
            reason = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            log.warning("%s is unavailable (%s); answering 503 until it is back", service, reason)

    def up(self, service: str) -> None:
        """``service`` answered."""
        if service not in self._since:  # the usual case: no lock taken
            return
        with self._lock:
            since = self._since.pop(service, None)
            refused = self._refused.pop(service, 0)
        if since is not None:
            log.warning(
                "%s answers again after %.1fs (%d answers were 503)",
                service,
                time.monotonic() - since,
                refused,
            )

    def is_down(self, service: str) -> bool:
        """Whether ``service`` is known to be down."""
        return service in self._since
