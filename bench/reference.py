"""The reference: one process reading N emulator streams with asyncio + httpx, nothing else.

    python bench/reference.py URL TOTAL CONCURRENCY asyncio|uvloop   → one JSON line

Same client settings as the workers (keep-alive pool of 20; see DESIGN.md), so the only
difference from the pipeline is everything the pipeline does besides reading.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

import httpx

BODY = {
    "model": {"id": "gpt-3.5-turbo", "name": "GPT-3.5"},
    "key": "",
    "temperature": 0.7,
    "prompt": "You are a helpful assistant.",
}


async def read_all(url: str, total: int, concurrency: int) -> dict[str, float]:
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=20)
    timeout = httpx.Timeout(60.0, connect=10.0)
    chunks = 0
    numbers = iter(range(total))
    async with httpx.AsyncClient(limits=limits, timeout=timeout) as client:

        async def reader() -> None:
            nonlocal chunks
            for i in numbers:
                payload = dict(BODY, messages=[{"role": "user", "content": f"Question {i}"}])
                async with client.stream("POST", url + "/api/chat", json=payload) as response:
                    response.raise_for_status()
                    async for _ in response.aiter_raw():
                        chunks += 1

        start = time.perf_counter()
        await asyncio.gather(*(reader() for _ in range(concurrency)))
        elapsed = time.perf_counter() - start
    return {
        "streams_s": total / elapsed,
        "chunks_s": chunks / elapsed,
        "cpu_s": time.process_time(),
    }


def main() -> None:
    url, total, concurrency, loop = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    if loop == "uvloop":
        import uvloop

        result = uvloop.run(read_all(url, total, concurrency))
    else:
        result = asyncio.run(read_all(url, total, concurrency))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
