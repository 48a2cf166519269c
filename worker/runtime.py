"""A worker process's runtime: one event loop thread holding hundreds of streams.

Celery hands the process one message at a time; each message carries a dispatch token
naming a small group of jobs. ``offer`` hands the group to the intake (worker/intake.py)
and returns at once; the intake claims the group in SQL when there is room and starts its
streams on the event loop. From the claim on, SQL leases, not the broker, keep the jobs
safe; a group never claimed (the worker died first) is dispatched again by the dispatcher.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import redis.asyncio as aioredis
import uvloop

from models import dispatch, jobs
from models.db import Database
from models.jobs import ClaimedJob
from models.migrate import wait_until_current
from models.settings import Settings
from models.types import utcnow
from worker.engine import Engine
from worker.intake import Intake, Offer
from worker.monitor import Monitor
from worker.providers.http import ClientShards
from worker.redis_writer import RedisWriter

log = logging.getLogger(__name__)

SHUTDOWN_GRACE_SECONDS = 10.0


class Runtime:
    """Process-wide resources, built once at worker start and closed at shutdown."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.capacity = settings.worker_streams
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.db = Database.from_url(settings.sql_url)
        wait_until_current(self.db.engine, log)
        self.sql = ThreadPoolExecutor(max_workers=2, thread_name_prefix="sql")
        self.loop = uvloop.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="streams", daemon=True)
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(timeout=30)
        log.info("worker %s ready: %d streams", self.worker_id, self.capacity)

    async def _start(self) -> None:
        settings = self.settings
        pool = aioredis.BlockingConnectionPool.from_url(
            settings.redis_url, max_connections=16, timeout=10, socket_timeout=10
        )
        self.redis = aioredis.Redis(connection_pool=pool)
        self.writer = RedisWriter(
            self.redis, flush_ms=settings.chunk_flush_ms, retention=settings.redis_retention
        )
        self.clients = ClientShards.for_streams(self.capacity, settings.streams_per_client)
        self.intake = Intake(
            capacity=self.capacity,
            reserve=dispatch.reserve_of(self.capacity, settings.fair_reserve),
            claim=self._claim,
            start=self._start_job,
        )
        self.engine = Engine(
            settings=settings,
            db=self.db,
            sql=self.sql,
            clients=self.clients,
            writer=self.writer,
            on_done=lambda _job_id: self.intake.done(),
        )
        self.monitor = Monitor(
            settings=settings,
            db=self.db,
            sql=self.sql,
            engine=self.engine,
            worker_id=self.worker_id,
            capacity=self.capacity,
        )
        await asyncio.get_running_loop().run_in_executor(self.sql, self.monitor.heartbeat)
        self.writer.start()
        self.engine.start_recorder()
        self.monitor.start()
        self.intake.start()

    def offer(self, token: str, *, size: int, reserve: bool) -> None:
        """Take a dispatched group (from the broker's thread); it starts when there is room."""
        self.loop.call_soon_threadsafe(self.intake.offer, Offer(token, size, reserve))

    async def _claim(self, token: str) -> list[ClaimedJob]:
        return await asyncio.get_running_loop().run_in_executor(self.sql, self._claim_now, token)

    def _claim_now(self, token: str) -> list[ClaimedJob]:
        with self.db.write() as session:
            return jobs.claim(
                session, token, now=utcnow(), lease_seconds=self.settings.lease_seconds
            )

    def _start_job(self, job: ClaimedJob) -> None:
        self.engine.start(job)

    def close(self) -> None:
        """Finish or hand back every running job, then close every client."""
        future = asyncio.run_coroutine_threadsafe(self._close(), self.loop)
        try:
            future.result(timeout=SHUTDOWN_GRACE_SECONDS + 30)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=5)
            self.sql.shutdown(wait=True)
            self.db.dispose()

    async def _close(self) -> None:
        loop = asyncio.get_running_loop()
        unstarted = await self.intake.close()
        left = await self.engine.drain(SHUTDOWN_GRACE_SECONDS)
        await self.monitor.close()
        await loop.run_in_executor(self.sql, self._hand_back, left, unstarted)
        await self.writer.close()
        await self.clients.aclose()
        await self.redis.aclose()

    def _hand_back(self, left: dict[int, int], unstarted: list[str]) -> None:
        with self.db.write() as session:
            released = jobs.release(session, left, now=utcnow())
            undispatched = jobs.undispatch(session, unstarted)
            dispatch.forget_worker(session, self.worker_id)
        if released or undispatched:
            log.info(
                "handed back to the queue: %d running jobs, %d not started",
                released,
                undispatched,
            )
