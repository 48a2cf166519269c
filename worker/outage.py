"""One log line when a dependency goes away and one when it is back, not one per attempt.

SQL or Redis may be down for seconds or minutes; every loop that touches them retries on
its own schedule. Logging each failed try would bury the log (and a traceback per try
says nothing new), so each loop keeps an ``Outage`` per dependency.
"""

from __future__ import annotations

import logging
import time

from kombu.exceptions import OperationalError as KombuOperationalError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

# What a database outage raises: the server gone, a connection dropped, a lock timed out.
SQL_OUTAGE = (OperationalError, InterfaceError)
REDIS_OUTAGE = (RedisConnectionError, RedisTimeoutError, OSError)


def is_sql_outage(exc: BaseException) -> bool:
    """Whether ``exc`` means the database is unreachable (worth retrying), not a bug."""
    return isinstance(exc, SQL_OUTAGE) or (
        isinstance(exc, DBAPIError) and exc.connection_invalidated
    )


class Outage:
    """Tracks whether ``what`` is down, logging only the start and the end of an outage."""

    def __init__(self, what: str, log: logging.Logger) -> None:
        self.what = what
        self.log = log
        self.since: float | None = None

    @property
    def down(self) -> bool:
        """Whether the last try failed."""
        return self.since is not None

    def failed(self, exc: BaseException, doing: str) -> None:
        """A try failed; logs the first failure of an outage only."""
        if self.since is None:
            self.since = time.monotonic()
            self.log.warning(
                "%s is unreachable (%s: %s); %s will be retried until it is back",
                self.what,
                type(exc).__name__,
                " ".join(str(exc).split())[:300],
                doing,
            )

    def ok(self) -> None:
        """A try succeeded; logs the end of an outage."""
        if self.since is not None:
            self.log.warning(
                "%s is reachable again after %.1fs", self.what, time.monotonic() - self.since
            )
            self.since = None


class Outages:
    """The outages one loop watches: SQL, and Redis (the broker and the live view)."""

    def __init__(self, log: logging.Logger) -> None:
        self.sql = Outage("SQL", log)
        self.redis = Outage("Redis", log)
        self.log = log

    def handle(self, exc: BaseException, doing: str) -> None:
        """Log a failed pass: one line per outage, or the traceback of anything else (a bug)."""
        if is_sql_outage(exc):
            self.sql.failed(exc, doing)
        elif isinstance(exc, REDIS_OUTAGE) or isinstance(exc, KombuOperationalError):
            self.redis.failed(exc, doing)
        else:
            self.log.exception("%s failed; retrying", doing)

    def ok(self) -> None:
        """A pass went through: whatever was down is back."""
        self.sql.ok()
        self.redis.ok()
