"""The dispatcher: moves queued jobs into the broker as capacity frees, and recovers.

One pass, every ``dispatch_interval`` seconds:
1. recover: jobs whose lease ran out (their worker died) go back to the queue; jobs
   dispatched but never claimed (the message was lost) are dispatched again; open jobs
   of batches past their completion window expire;
2. dispatch: free capacity = what live workers can hold (plus a small backlog of groups
   waiting ahead) − what is in flight; that many jobs, shared fairly between tenants and
   then round-robin between each tenant's batches (models/dispatch.py), and never more
   for an upstream than its limits leave free (worker/dispatch_caps.py), are handed to the
   broker in groups, one message per group, each group under a fresh token (a claim must
   present it, so a late duplicate message claims nothing); groups of tenants under their
   fair share may use the workers' reserve;
3. finalize batches with no open job, rewrite every open batch's progress hash, and write
   any terminal stream entry a dead worker could not (worker/repair.py).

A thread of the same process delivers the webhook events that finalizing writes
(worker/webhooks.py).

Run one dispatcher per deployment (`aivbatch dispatcher`).
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
import time
from types import FrameType

import redis
from celery import Celery

from models import batches, dispatch, jobs
from models.db import Database
from models.errors import ConfigError
from models.migrate import wait_until_current
from models.rediskeys import RedisKeys
from models.routing import Routing
from models.settings import Settings, get_settings
from models.states import JobStatus
from models.types import utcnow
from worker import webhooks
from worker.celery_app import RUN_JOBS
from worker.dispatch_caps import DispatchCaps
from worker.monitor import HEARTBEAT_SECONDS
from worker.outage import Outages
from worker.progress import publish
from worker.repair import StreamRepair

log = logging.getLogger(__name__)

PROGRESS_EVERY_SECONDS = 0.5


class Dispatcher:
    """One dispatcher/reconciler; ``run_pass`` does a single pass."""

    def __init__(
        self,
        settings: Settings,
        db: Database,
        client: redis.Redis,
        app: Celery,
        routing: Routing | None = None,
    ) -> None:
        self.settings = settings
        self.db = db
        self.redis = client
        self.app = app
        self.keys = RedisKeys(settings.redis_prefix)
        self.routing = routing or Routing.from_settings(settings)
        self.caps = DispatchCaps(self.routing, client, self.keys)
        self._last_progress = 0.0
        self.outages = Outages(log)
        self._repair = StreamRepair(self.keys, retention=settings.redis_retention, now=utcnow())

    def run_pass(self) -> int:
        """Recover, dispatch, finalize; returns how many jobs were dispatched."""
        groups = self._recover_and_pick()
        sent = 0
        for i, group in enumerate(groups):
            size = len(group.job_ids)
            try:
                self.app.send_task(
                    RUN_JOBS,
                    args=[group.token],
                    kwargs={"size": size, "reserve": group.reserve},
                    queue=self.keys.queue,
                )
                sent += size
            except Exception as exc:
                self.outages.handle(exc, "sending groups to the broker")
                # Free the unsent groups now rather than after the dispatch timeout.
                with self.db.write() as session:
                    jobs.undispatch(session, [g.token for g in groups[i:]])
                break
        self._finalize_and_publish()
        return sent

    def _recover_and_pick(self) -> list[dispatch.Group]:
        s = self.settings
        upstreams = self.caps.state()
        now = utcnow()
        # Each step that moves jobs commits on its own: it locks jobs, then their batches'
        # counters, and a later step locking jobs while holding counters could deadlock
        # with a worker's claim (jobs, then counters) on PostgreSQL.
        with self.db.write() as session:
            lost = jobs.requeue_lost(session, now=now, max_attempts=s.max_attempts)
            stale = jobs.reset_stale_dispatches(session, now=now, timeout=s.dispatch_timeout)
        with self.db.write() as session:
            overdue = batches.overdue_batch_ids(session, now=now)
            expired = jobs.end_open_jobs(
                session, overdue, JobStatus.EXPIRED, "batch_expired", now=now, running_too=True
            )
        with self.db.write() as session:
            # A job of a cancelled batch that went back to the queue after the cancel (its
            # worker died, or its retry was recorded as the cancel came) would wait forever.
            cancelled = jobs.end_open_jobs(
                session,
                batches.cancelling_batch_ids(session),
                JobStatus.CANCELLED,
                "batch_cancelled",
                now=now,
                running_too=False,
                error_message=batches.CANCELLED_MESSAGE,
            )
        with self.db.write() as session:
            live = dispatch.live_capacity(
                session, now=now, ttl=HEARTBEAT_SECONDS * 3, reserve_share=s.fair_reserve
            )
            # A group is claimed whole, so none may be larger than the smallest worker.
            group = max(1, min(s.dispatch_group, live.smallest))
            # A few groups wait ahead in each worker, so freed room is filled at once
            # instead of a dispatcher pass and a broker round trip later.
            capacity = live.streams + live.workers * s.dispatch_backlog * group
            allowance = self.caps.allowance(upstreams, dispatch.in_flight_by_upstream(session))
            groups = dispatch.fill(
                session,
                capacity=capacity,
                reserve=live.reserve,
                group=group,
                now=now,
                allowance=allowance,
            )
        if lost or stale or expired or cancelled:
            log.info(
                "recovered: %d lost leases, %d lost messages, %d expired, %d cancelled late",
                lost,
                stale,
                expired,
                cancelled,
            )
        return groups

    def _finalize_and_publish(self) -> None:
        now = utcnow()
        with self.db.write() as session:
            finished = batches.finalize(session, now=now)
        if not finished and time.monotonic() - self._last_progress < PROGRESS_EVERY_SECONDS:
            return
        self._last_progress = time.monotonic()
        with self.db.read() as session:
            repaired = self._repair.run(session, self.redis, now=now)
            if repaired:
                log.info("healed %d job streams from SQL", repaired)
            publish(
                session,
                self.redis,
                self.keys,
                batches.open_batch_ids(session),
                retention=self.settings.redis_retention,
                outage=self.outages.redis,
                finished=finished,
            )
        for batch_id, status in finished:
            log.info("batch %s %s", batch_id, status)


def run_forever(stop: threading.Event) -> None:
    """Run passes until ``stop`` is set."""
    from worker.celery_app import app

    settings = get_settings()
    db = Database.from_url(settings.sql_url)
    if not wait_until_current(db.engine, log, stopped=stop.is_set):
        db.dispose()
        return
    # Socket timeouts, so a Redis that stops answering holds a pass seconds, not forever.
    pool = redis.BlockingConnectionPool.from_url(
        settings.redis_url,
        max_connections=4,
        timeout=5,
        socket_timeout=5,
        socket_connect_timeout=5,
    )
    client = redis.Redis(connection_pool=pool)
    dispatcher = Dispatcher(settings, db, client, app)
    # Webhooks go out from this process, on a thread of their own: never from a worker.
    sender = webhooks.start(settings, db, stop)
    log.info("dispatcher running (every %.2fs)", settings.dispatch_interval)
    try:
        outages = Outages(log)
        while not stop.is_set():
            try:
                dispatcher.run_pass()
                outages.ok()
            except Exception as exc:
                outages.handle(exc, "the dispatcher pass")
            stop.wait(settings.dispatch_interval)
    finally:
        stop.set()
        sender.join(settings.webhook_timeout + webhooks.HOLD_MARGIN_SECONDS)
        client.close()
        db.dispose()


def main() -> None:
    """`python -m worker.dispatcher`: run until SIGTERM or SIGINT."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    stop = threading.Event()

    def _stop(_sig: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        Routing.from_settings(get_settings())
    except ConfigError as exc:
        sys.exit(f"aivbatch dispatcher: {exc}")
    run_forever(stop)


if __name__ == "__main__":
    main()
