"""`python -m worker`: a Celery worker process with the project's settings."""

from __future__ import annotations

import logging
import os
import sys

from models.errors import ConfigError
from models.rediskeys import RedisKeys
from models.routing import Routing
from models.settings import get_settings
from worker.celery_app import app


def main() -> None:
    """Run one worker process; the solo pool because concurrency lives in the event loop."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # httpx logs every request at INFO: a line per job, a few per cent of the worker's CPU.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    try:
        Routing.from_settings(get_settings())
    except ConfigError as exc:
        sys.exit(f"aivbatch worker: {exc}")
    queue = RedisKeys(get_settings().redis_prefix).queue
    app.worker_main(
        [
            "worker",
            "--pool=solo",
            f"--queues={queue}",
            f"--hostname=aivbatch-{os.getpid()}@%h",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "--loglevel=INFO",
        ]
    )


if __name__ == "__main__":
    main()
