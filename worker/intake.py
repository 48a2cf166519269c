"""Dispatched groups waiting for room in this worker, and the order they start in.

The broker hands a worker one message at a time, each naming a group of jobs. Taking a
message never waits for room: a worker blocked on one tenant's group could not see the
next message, so a newcomer's small batch would wait behind answers that take minutes.
Groups wait here instead, bounded by what the dispatcher hands out, and start as room
frees: groups the dispatcher marked for the reserve (tenants under their fair share) first,
and into the reserve's extra streams too; the rest only into the normal streams.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from models.jobs import ClaimedJob
from worker.outage import Outages

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Offer:
    """One dispatched group: its token, how many jobs it names, whether it may use the reserve."""

    token: str
    size: int
    reserve: bool = False


class Intake:
    """Starts offered groups as room frees; lives on the worker's event loop."""

    def __init__(
        self,
        *,
        capacity: int,
        reserve: int,
        claim: Callable[[str], Awaitable[list[ClaimedJob]]],
        start: Callable[[ClaimedJob], None],
    ) -> None:
        self.capacity = capacity
        self.reserve = reserve
        self._claim = claim
        self._start = start
        self._normal: deque[Offer] = deque()
        self._reserved: deque[Offer] = deque()
        # Streams running, or held for a group being claimed.
        self.used = 0
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._outages = Outages(log)

    def start(self) -> None:
        """Start taking groups on the running event loop."""
        self._task = asyncio.get_running_loop().create_task(self._run(), name="intake")

    def offer(self, offer: Offer) -> None:
        """A group arrived from the broker (called on the loop)."""
        (self._reserved if offer.reserve else self._normal).append(offer)
        self._wake.set()

    def done(self) -> None:
        """A stream ended: its room is free again."""
        self.used -= 1
        self._wake.set()

    def waiting(self) -> list[str]:
        """Tokens of the groups not started yet."""
        return [o.token for o in (*self._reserved, *self._normal)]

    def _fits(self, offer: Offer, limit: int) -> bool:
        # An empty worker takes any group, so a group larger than the worker cannot wedge it.
        return self.used == 0 or self.used + offer.size <= limit

    def _next(self) -> Offer | None:
        if self._reserved and self._fits(self._reserved[0], self.capacity + self.reserve):
            return self._reserved.popleft()
        if self._normal and self._fits(self._normal[0], self.capacity):
            return self._normal.popleft()
        return None

    async def _run(self) -> None:
        while not self._closing:
            await self._wake.wait()
            self._wake.clear()
            while not self._closing and (offer := self._next()) is not None:
                self.used += offer.size
                try:
                    claimed = await self._claim(offer.token)
                    self._outages.ok()
                except Exception as exc:
                    # Unclaimed, the group is dispatched again after the dispatch timeout.
                    self._outages.handle(exc, "claiming dispatched groups")
                    claimed = []
                self.used -= offer.size - len(claimed)
                for job in claimed:
                    self._start(job)

    async def close(self) -> list[str]:
        """Stop taking groups; returns the tokens of those never started.

        A claim under way is let finish (its jobs are then running here and drained like
        the others); cancelling it could leave jobs claimed in SQL that nobody streams.
        """
        self._closing = True
        self._wake.set()
        if self._task is not None:
            await self._task
        left = self.waiting()
        self._normal.clear()
        self._reserved.clear()
        return left
