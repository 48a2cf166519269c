"""A worker process's runtime: one event loop thread holding hundreds of streams.

Celery hands the process one message at a time; each message carries a dispatch token
naming a small group of jobs. ``offer`` hands the group to the intake (worker/intake.py)
and returns at once; when there is room the intake takes the permits of the group's
upstreams (worker/upstream_limits.py), claims in SQL the jobs that got one, hands the rest
back to the queue without spending an attempt, and starts the claimed streams on the event
loop. From the claim on, SQL leases, not the broker, keep the jobs
safe; a group never claimed (the worker died first) is dispatched again by the dispatcher.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import redis.asyncio as aioredis
import uvloop

from models import dispatch, jobs
from models.db import Database
from models.jobs import ClaimedJob
from models.migrate import wait_until_current
from models.rediskeys import RedisKeys
from models.routing import Routing
from models.settings import Settings
from models.types import utcnow
from worker.engine import Engine
from worker.intake import Intake, Offer
from worker.monitor import Monitor
from worker.providers import registry
from worker.providers.http import ClientShards
from worker.redis_writer import RedisWriter
from worker.upstream_limits import Admission, UpstreamLimits, Waiting

log = logging.getLogger(__name__)

# The whole stop, from the signal to the exit: running answers get most of it, handing the
# rest back and closing clients the last few seconds, whatever is down.
SHUTDOWN_GRACE_SECONDS = 10.0
CLEANUP_SECONDS = 4.0
REDIS_TIMEOUT = 3.0


class Runtime:
    """Process-wide resources, built once at worker start and closed at shutdown."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.capacity = settings.worker_streams
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.routing = Routing.from_settings(settings)
        # The routing file names the variables holding the upstreams' keys; read them here,
        # where the process starts, and hand each provider its own.
        self.providers = registry.build(self.routing, settings, os.environ)
        for name in registry.missing_keys(self.routing, os.environ):
            log.warning("the variable %s named by api_key_env is not set: no key is sent", name)
        # Permits taken for claimed jobs, until their streams start: job id → upstream.
        self._permits: dict[int, str | None] = {}
        self.db = Database.from_url(settings.sql_url)
        wait_until_current(self.db.engine, log)
        self.sql = ThreadPoolExecutor(max_workers=2, thread_name_prefix="sql")
        self.stuck = False
        self.loop = uvloop.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="streams", daemon=True)
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(timeout=30)
        log.info("worker %s ready: %d streams", self.worker_id, self.capacity)

    async def _start(self) -> None:
        settings = self.settings
        # Every write is small and pipelined: a Redis that has not answered in a few seconds
        # is away, and a worker must not hold its SQL records or its shutdown for it.
        pool = aioredis.BlockingConnectionPool.from_url(
            settings.redis_url,
            max_connections=16,
            timeout=REDIS_TIMEOUT,
            socket_timeout=REDIS_TIMEOUT,
            socket_connect_timeout=REDIS_TIMEOUT,
        )
        self.redis = aioredis.Redis(connection_pool=pool)
        # The writer's pipelines hold hundreds of replies: a socket timeout times each
        # reply read (a few per cent of the worker's CPU), so its connections have none
        # and the writer bounds each whole pipeline by REDIS_TIMEOUT instead.
        writer_pool = aioredis.BlockingConnectionPool.from_url(
            settings.redis_url,
            max_connections=4,
            timeout=REDIS_TIMEOUT,
            socket_connect_timeout=REDIS_TIMEOUT,
        )
        self.writer_redis = aioredis.Redis(connection_pool=writer_pool)
        self.writer = RedisWriter(
            self.writer_redis,
            flush_ms=settings.chunk_flush_ms,
            retention=settings.redis_retention,
            timeout=REDIS_TIMEOUT,
        )
        self.clients = ClientShards.for_settings(settings)
        self.limits = UpstreamLimits(
            self.redis,
            RedisKeys(settings.redis_prefix),
            self.routing,
            owner=self.worker_id,
            lease_seconds=settings.lease_seconds,
        )
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
            routing=self.routing,
            providers=self.providers,
            limits=self.limits,
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
        """Claim the group's jobs whose upstream can take them now; hand the rest back."""
        loop = asyncio.get_running_loop()
        waiting = await loop.run_in_executor(self.sql, self._waiting, token)
        admission = await self.limits.admit(waiting)
        claimed = await loop.run_in_executor(self.sql, self._claim_now, token, admission)
        taken = {job.id for job in claimed}
        unused: dict[str | None, list[int]] = {}
        for job_id, upstream in admission.admitted.items():
            if job_id in taken:
                self._permits[job_id] = upstream
            else:
                unused.setdefault(upstream, []).append(job_id)
        for upstream, job_ids in unused.items():
            await self.limits.release(upstream, job_ids)
        return claimed

    def _waiting(self, token: str) -> list[Waiting]:
        with self.db.read() as session:
            dispatched = jobs.dispatched(session, token)
        waiting = []
        for job_id, model, upstream in dispatched:
            route = self.routing.on(upstream, model)
            waiting.append(Waiting(job_id, route.upstream.name if route else None))
        return waiting

    def _claim_now(self, token: str, admission: Admission) -> list[ClaimedJob]:
        now = utcnow()
        with self.db.write() as session:
            claimed = jobs.claim(
                session,
                token,
                now=now,
                lease_seconds=self.settings.lease_seconds,
                only=list(admission.admitted),
            )
            until = {j: now + timedelta(seconds=s) for j, s in admission.deferred.items()}
            jobs.defer(session, token, until)
        if admission.deferred:
            log.info("%d jobs wait for their upstream", len(admission.deferred))
        return claimed

    def _start_job(self, job: ClaimedJob) -> None:
        self.engine.start(job, self._permits.pop(job.id, None))

    def close(self) -> None:
        """Finish or hand back every running job, then close every client.

        ``stuck`` is then set if a thread may still wait on a server that does not answer.
        """
        future = asyncio.run_coroutine_threadsafe(self._close(), self.loop)
        try:
            future.result(timeout=SHUTDOWN_GRACE_SECONDS + 5)
        except Exception:
            log.exception("the worker did not stop cleanly")
            self.stuck = True
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=2)
            # A thread stuck on a database that does not answer must not hold the exit.
            self.sql.shutdown(wait=False, cancel_futures=True)
            self.db.dispose()

    async def _close(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = time.monotonic() + SHUTDOWN_GRACE_SECONDS

        def left_() -> float:
            return max(0.0, deadline - time.monotonic())

        log.info("stopping: %d streams running, %ds to finish", len(self.engine.attempts), left_())
        unstarted = await self.intake.close()
        left = await self.engine.drain(left_() - CLEANUP_SECONDS, settle=1.5)
        await self.monitor.close()
        try:
            await asyncio.wait_for(
                loop.run_in_executor(self.sql, self._hand_back, left, unstarted),
                max(0.5, left_() - 1.0),
            )
        except Exception as exc:
            # Their leases lapse and the dispatcher runs them again: slower, nothing lost.
            log.warning("could not hand %d jobs back (%r); their leases will", len(left), exc)
            self.stuck = True
        await self.writer.close(timeout=min(1.0, left_()))
        await self.clients.aclose()
        await self.redis.aclose(close_connection_pool=True)
        await self.writer_redis.aclose(close_connection_pool=True)
        log.info("stopped in %.1fs", SHUTDOWN_GRACE_SECONDS - left_())

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
