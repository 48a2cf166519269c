"""A worker process's runtime: one event loop thread holding hundreds of streams.

Celery hands the process one message at a time; each message carries a dispatch token
naming a small group of jobs. ``accept`` waits until the process has room for a group,
claims the group in SQL, and starts its streams on the event loop; the message is then
done. From there SQL leases, not the broker, keep the jobs safe.
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
from models.migrate import wait_until_current
from models.settings import Settings
from models.types import utcnow
from worker.engine import Engine
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
        self._room = threading.Condition()
        self._in_flight = 0
        self._closing = False
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
        self.engine = Engine(
            settings=settings,
            db=self.db,
            sql=self.sql,
            clients=self.clients,
            writer=self.writer,
            on_done=self._release_room,
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

    def _release_room(self, _job_id: int) -> None:
        with self._room:
            self._in_flight -= 1
            self._room.notify_all()

    def accept(self, token: str) -> int:
        """Claim the jobs dispatched under ``token`` and start them; returns how many."""
        # Room for a whole group (the dispatcher's group size), so a claim never overfills.
        want = min(self.settings.dispatch_group, self.capacity)
        with self._room:
            self._room.wait_for(lambda: self._closing or self._in_flight + want <= self.capacity)
            if self._closing:
                return 0  # unclaimed: the reconciler dispatches them again
            self._in_flight += want
        try:
            with self.db.write() as session:
                claimed = jobs.claim(
                    session, token, now=utcnow(), lease_seconds=self.settings.lease_seconds
                )
        finally:
            with self._room:
                self._in_flight -= want
                self._room.notify_all()
        with self._room:
            self._in_flight += len(claimed)
        for job in claimed:
            self.loop.call_soon_threadsafe(self.engine.start, job)
        return len(claimed)

    @property
    def in_flight(self) -> int:
        """Streams running or about to start."""
        return self._in_flight

    def close(self) -> None:
        """Finish or hand back every running job, then close every client."""
        with self._room:
            self._closing = True
            self._room.notify_all()
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
        left = await self.engine.drain(SHUTDOWN_GRACE_SECONDS)
        await self.monitor.close()
        await loop.run_in_executor(self.sql, self._hand_back, left)
        await self.writer.close()
        await self.clients.aclose()
        await self.redis.aclose()

    def _hand_back(self, left: dict[int, int]) -> None:
        with self.db.write() as session:
            released = jobs.release(session, left, now=utcnow())
            dispatch.forget_worker(session, self.worker_id)
        if released:
            log.info("handed %d running jobs back to the queue", released)
