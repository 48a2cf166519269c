"""The Celery app: JSON only, late acks, one message reserved at a time, results ignored.

Messages carry only a dispatch token; SQL is the record of what must run, so the broker
losing a message (a SIGKILL, a FLUSHALL) costs a delay, never a job.
"""

from __future__ import annotations

from celery import Celery

from models.rediskeys import RedisKeys
from models.settings import get_settings

RUN_JOBS = "aivbatch.run_jobs"
# Seconds; above kombu's one-second BRPOP, far below any wait a caller would notice.
BROKER_SOCKET_TIMEOUT = 3.0


def make_app() -> Celery:
    """A Celery app configured from the settings (no connection is made here)."""
    settings = get_settings()
    queue = RedisKeys(settings.redis_prefix).queue
    app = Celery("aivbatch", broker=settings.redis_url, include=["worker.tasks"])
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        result_serializer="json",
        task_ignore_result=True,
        result_backend=None,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_default_queue=queue,
        task_routes={RUN_JOBS: {"queue": queue}},
        broker_connection_retry_on_startup=True,
        broker_transport_options={
            # Above the longest a message can sit reserved; the reconciler, not this
            # redelivery, is what guarantees a lost message's jobs run.
            "visibility_timeout": max(3600, int(settings.lease_seconds * 4)),
            # Without these a Redis that stops answering without closing the connection (a
            # partition, a paused server) holds a publish, or a worker's shutdown, forever.
            "socket_timeout": BROKER_SOCKET_TIMEOUT,
            "socket_connect_timeout": BROKER_SOCKET_TIMEOUT,
        },
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
    )
    return app


app = make_app()
