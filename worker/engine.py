"""The event-loop side of a worker process: the attempts in flight and how they end.

Streams run as asyncio tasks; SQL runs in a small thread pool so the loop never blocks.
Outcomes are written in batches (one transaction for all that ended in the same few
milliseconds). Their chunks are flushed to Redis before, and their terminal entries sent
after, so Redis never announces a result that SQL does not hold.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor

from redis.exceptions import RedisError

from models import jobmetrics, jobs
from models.db import Database
from models.jobs import ClaimedJob, Outcome, Stop
from models.rediskeys import RedisKeys
from models.routing import Routing
from models.settings import Settings
from models.types import utcnow
from worker.attempt import Attempt, stream
from worker.events import announce_claim, announce_outcome
from worker.outage import Outage, is_sql_outage
from worker.providers.errors import ProviderError, RateLimited
from worker.providers.http import ClientShards
from worker.providers.interface import Provider
from worker.redis_writer import RedisWriter
from worker.upstream_limits import UpstreamLimits

log = logging.getLogger(__name__)


class Engine:
    """Runs attempts on the event loop and records how each one ended."""

    def __init__(
        self,
        *,
        settings: Settings,
        db: Database,
        sql: ThreadPoolExecutor,
        clients: ClientShards,
        writer: RedisWriter,
        routing: Routing,
        providers: dict[str, Provider],
        limits: UpstreamLimits,
        on_done: Callable[[int], None],
    ) -> None:
        self.settings = settings
        self.db = db
        self.sql = sql
        self.clients = clients
        self.writer = writer
        self.routing = routing
        self.providers = providers
        self.limits = limits
        self.keys = RedisKeys(settings.redis_prefix)
        self.attempts: dict[int, Attempt] = {}
        self._tasks: dict[int, asyncio.Task[None]] = {}
        self._on_done = on_done
        self._ended: list[tuple[ClaimedJob, Outcome | None]] = []
        self._ended_signal = asyncio.Event()
        self._rng = random.Random()
        self._recorder: asyncio.Task[None] | None = None
        self._sql = Outage("SQL", log)
        self._record_every = settings.chunk_flush_ms / 1000

    def start_recorder(self) -> None:
        """Start the loop that writes outcomes to SQL."""
        self._recorder = asyncio.get_running_loop().create_task(self._record_loop())

    def start(self, job: ClaimedJob, permit: str | None = None) -> None:
        """Begin streaming a claimed job (called on the loop thread), holding a permit of the
        upstream ``permit`` if one was taken for it."""
        attempt = Attempt(job, permit=permit)
        self.attempts[job.id] = attempt
        announce_claim(self.writer, self.keys, job)
        task = asyncio.get_running_loop().create_task(self._run(attempt), name=f"job-{job.id}")
        self._tasks[job.id] = task
        task.add_done_callback(lambda _t: self._tasks.pop(job.id, None))

    def stop(self, stop: Stop) -> None:
        """Stop an attempt from outside (cancelled batch, expiry, lost lease)."""
        attempt = self.attempts.get(stop.job_id)
        if attempt is None or attempt.stop is not None:
            return
        attempt.stop = stop
        task = self._tasks.get(stop.job_id)
        if task is not None:
            task.cancel()

    def batches(self) -> set[str]:
        """The batches of the attempts in flight."""
        return {a.job.batch_id for a in self.attempts.values()}

    def jobs_and_batches(self) -> list[tuple[int, str]]:
        """(job id, batch id) of each attempt in flight."""
        return [(job_id, a.job.batch_id) for job_id, a in self.attempts.items()]

    def held(self) -> dict[int, int]:
        """The attempts this process holds: job id → attempt number."""
        return {job_id: a.job.attempt for job_id, a in self.attempts.items()}

    def permits(self) -> dict[str, list[int]]:
        """The upstream permits this process holds: upstream → job ids."""
        held: dict[str, list[int]] = {}
        for job_id, attempt in self.attempts.items():
            if attempt.permit is not None:
                held.setdefault(attempt.permit, []).append(job_id)
        return held

    async def _run(self, attempt: Attempt) -> None:
        outcome: Outcome | None
        try:
            await stream(
                attempt,
                routing=self.routing,
                providers=self.providers,
                client=self.clients.pick(attempt.job.id),
                writer=self.writer,
                keys=self.keys,
            )
            outcome = attempt.finished()
        except asyncio.CancelledError:
            outcome = attempt.stopped()
        except ProviderError as exc:
            # The upstream's doing, recorded in the job; the log needs only the kind.
            outcome = attempt.failed(exc, self.settings, self._rng, self.routing)
            log.info(
                "job %s attempt %s on %s: %s",
                attempt.job.id,
                attempt.job.attempt,
                attempt.upstream,
                outcome.error_code,
            )
            if isinstance(exc, RateLimited) and exc.retry_after and attempt.upstream:
                await self._quietly(self.limits.pause(attempt.upstream, exc.retry_after))
        except Exception as exc:
            # Ours: the job fails with a generic message, the traceback goes to the log.
            log.exception(
                "job %s attempt %s failed unexpectedly", attempt.job.id, attempt.job.attempt
            )
            outcome = attempt.failed(exc, self.settings, self._rng, self.routing)
        if attempt.permit is not None:
            await self._quietly(self.limits.release(attempt.permit, [attempt.job.id]))
        self._ended.append((attempt.job, outcome))
        self._ended_signal.set()

    async def _quietly(self, step: Awaitable[None]) -> None:
        # Redis away: a pause is missed, a permit expires by itself with its lease.
        try:
            await step
        except (RedisError, OSError) as exc:
            log.warning("upstream limits not updated: %s", exc)

    async def _record_loop(self) -> None:
        loop = asyncio.get_running_loop()
        last = 0.0
        while True:
            await self._ended_signal.wait()
            # At most one round (a Redis flush, a transaction, another flush) per flush
            # window: at hundreds of endings a second, a round per few endings is most of
            # what recording costs; when endings are rare, no wait at all.
            if (gap := self._record_every - (loop.time() - last)) > 0:
                await asyncio.sleep(gap)
            last = loop.time()
            self._ended_signal.clear()
            ended, self._ended = self._ended, []
            # The attempts' last chunks reach Redis before SQL records them as ended: a worker
            # killed in between then leaves streams whose text is whole, only their terminal
            # entries missing (the dispatcher's repair writes those from SQL).
            await self.writer.flush()
            try:
                applied = await loop.run_in_executor(self.sql, self._write, ended)
            except Exception as exc:
                if not is_sql_outage(exc):
                    # A bug, not an outage: retrying would hold these slots forever. Their
                    # leases lapse and the dispatcher runs the jobs again (or fails them).
                    log.exception("recording %d outcomes failed; dropping them", len(ended))
                    applied = [False] * len(ended)
                else:
                    # SQL is away: keep them and try again; the leases keep the jobs ours.
                    self._sql.failed(exc, f"recording {len(ended)} outcomes")
                    self._ended = ended + self._ended
                    await asyncio.sleep(1.0)
                    self._ended_signal.set()
                    continue
            self._sql.ok()
            for (job, outcome), ok in zip(ended, applied, strict=True):
                if ok and outcome is not None:
                    announce_outcome(self.writer, self.keys, job, outcome)
                    self.writer.count(self.keys.metrics, *jobmetrics.increments(outcome))
                # A later attempt's text starts afresh, whatever this one's stream lost.
                self.writer.forget(self.keys.job_stream(job.batch_id, job.custom_id))
                self.attempts.pop(job.id, None)
                self._on_done(job.id)

    def _write(self, ended: list[tuple[ClaimedJob, Outcome | None]]) -> list[bool]:
        outcomes = [outcome for _job, outcome in ended if outcome is not None]
        with self.db.write() as session:
            applied = iter(jobs.record_many(session, outcomes, now=utcnow()))
        return [outcome is not None and next(applied) for _job, outcome in ended]

    async def drain(self, grace: float, settle: float) -> dict[int, int]:
        """Let running attempts finish for up to ``grace`` seconds, then stop the rest and
        give the recorder up to ``settle`` seconds; returns the attempts left unfinished."""
        if self._tasks:
            await asyncio.wait(set(self._tasks.values()), timeout=max(0.0, grace))
        left = self.held()
        for job_id in left:
            self.stop(Stop(job_id, None, "worker_shutdown"))
        deadline = time.monotonic() + settle
        if self._tasks:
            await asyncio.wait(set(self._tasks.values()), timeout=settle / 2)
        # Give the recorder the rest to write what finished during the grace period.
        while (self._ended or self._ended_signal.is_set()) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        if self._recorder is not None:
            self._recorder.cancel()
        return left
