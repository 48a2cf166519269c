"""A request body received whole before it is parsed, without being held in memory.

The body goes to a spooled temporary file (memory up to ``SPOOL_MEMORY``, disk beyond),
and is parsed from there in a worker thread. Receiving first matters for SQLite, which
has one writer: the write transaction that stores a batch must not wait on a slow client.
"""

from __future__ import annotations

import tempfile
from typing import IO

from fastapi import Request

from api.errors import ApiError

SPOOL_MEMORY = 1024 * 1024
JSON_TYPES = ("application/json",)


async def spool_json(request: Request) -> IO[bytes]:
    """The JSON body of ``request`` in a file, positioned at its start."""
    kind = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
    if kind not in JSON_TYPES and not kind.endswith("+json"):
        raise ApiError(f"the body must be JSON (content-type: application/json), not {kind!r}")
    spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY)  # noqa: SIM115
    try:
        async for chunk in request.stream():
            spool.write(chunk)
    except BaseException:
        spool.close()
        raise
    spool.seek(0)
    return spool
