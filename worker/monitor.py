"""Keeps a worker's claims honest: renews leases, reports liveness, stops what must stop."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from concurrent.futures import ThreadPoolExecutor

from models import dispatch, jobs
from models.db import Database
from models.jobs import Stop
from models.settings import Settings
from models.types import utcnow
from worker.engine import Engine
from worker.outage import Outages

log = logging.getLogger(__name__)

# How often running attempts are checked against SQL: a cancelled batch stops within this.
STOP_CHECK_SECONDS = 0.5
HEARTBEAT_SECONDS = 5.0


class Monitor:
    """Every half second: batches cancelled or expired; every few seconds: leases, heartbeat."""

    def __init__(
        self,
        *,
        settings: Settings,
        db: Database,
        sql: ThreadPoolExecutor,
        engine: Engine,
        worker_id: str,
        capacity: int,
    ) -> None:
        self.settings = settings
        self.db = db
        self.sql = sql
        self.engine = engine
        self.worker_id = worker_id
        self.capacity = capacity
        self._renew_every = min(settings.lease_seconds / 3, HEARTBEAT_SECONDS)
        self._task: asyncio.Task[None] | None = None
        self._outages = Outages(log)

    def heartbeat(self) -> None:
        """Record this process as alive with its capacity (blocking; call from a thread)."""
        with self.db.write() as session:
            dispatch.heartbeat(
                session,
                self.worker_id,
                hostname=socket.gethostname(),
                pid=os.getpid(),
                capacity=self.capacity,
                now=utcnow(),
            )

    def start(self) -> None:
        """Start checking on the running event loop."""
        self._task = asyncio.get_running_loop().create_task(self._run(), name="monitor")

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        last_renewal = time.monotonic()
        while True:
            await asyncio.sleep(STOP_CHECK_SECONDS)
            try:
                batch_ids = self.engine.batches()
                stops = await loop.run_in_executor(self.sql, self._batch_stops, batch_ids)
                for job_id, batch_id in self.engine.jobs_and_batches():
                    if stop := stops.get(batch_id):
                        self.engine.stop(Stop(job_id, stop.status, stop.error_code))
                if time.monotonic() - last_renewal >= self._renew_every:
                    last_renewal = time.monotonic()
                    lost = await loop.run_in_executor(self.sql, self._renew, self.engine.held())
                    for job_id in lost:
                        self.engine.stop(Stop(job_id, None, "attempt_superseded"))
                    await self.engine.limits.renew(self.engine.permits())
                self._outages.ok()
            except Exception as exc:
                # SQL may be briefly away; the lease outlives a few missed renewals.
                self._outages.handle(exc, "checking leases and cancellations")

    def _batch_stops(self, batch_ids: set[str]) -> dict[str, Stop]:
        with self.db.read() as session:
            return jobs.batch_stops(session, batch_ids, now=utcnow())

    def _renew(self, held: dict[int, int]) -> list[int]:
        """Renew the leases still ours; returns the attempts that are ours no longer."""
        with self.db.write() as session:
            lost = jobs.lost_attempts(session, held)
            ours = {job_id: attempt for job_id, attempt in held.items() if job_id not in lost}
            jobs.renew_leases(
                session, ours, now=utcnow(), lease_seconds=self.settings.lease_seconds
            )
        self.heartbeat()
        return lost

    async def close(self) -> None:
        """Stop checking."""
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
