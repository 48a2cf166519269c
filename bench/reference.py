"""The reference: one process reading N emulator streams with asyncio + httpx, nothing else.

    python bench/reference.py URL TOTAL CONCURRENCY asyncio|uvloop [aiohttp|httpcore [PER_CLIENT]]
        → one JSON line

Same client settings as the workers (keep-alive pool of 20; see DESIGN.md), so the only
difference from the pipeline is everything the pipeline does besides reading. The transport
under httpx is httpcore (httpx's own) or aiohttp (worker/providers/transport.py, as the
workers run it); the streams are spread over clients of PER_CLIENT streams each (default:
one client for all), as a worker shards them.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from worker.providers.transport import Transport, async_transport  # noqa: E402

BODY = {
    "model": {"id": "gpt-3.5-turbo", "name": "GPT-3.5"},
    "key": "",
    "temperature": 0.7,
    "prompt": "You are a helpful assistant.",
}


async def read_all(
    url: str, total: int, concurrency: int, transport: Transport, per_client: int
) -> dict[str, float]:
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=20)
    timeout = httpx.Timeout(60.0, connect=10.0)
    chunks = failed = 0
    numbers = iter(range(total))
    clients = [
        httpx.AsyncClient(limits=limits, timeout=timeout, transport=async_transport(transport))
        for _ in range(max(1, -(-concurrency // per_client)))
    ]

    async def reader(client: httpx.AsyncClient) -> None:
        nonlocal chunks, failed
        for i in numbers:
            payload = dict(BODY, messages=[{"role": "user", "content": f"Question {i}"}])
            try:
                async with client.stream("POST", url + "/api/chat", json=payload) as response:
                    response.raise_for_status()
                    async for _ in response.aiter_raw():
                        chunks += 1
            except httpx.HTTPError:
                failed += 1  # counted, not retried: an overloaded machine resets a few

    cpu0 = time.process_time()
    start = time.perf_counter()
    await asyncio.gather(*(reader(clients[n % len(clients)]) for n in range(concurrency)))
    elapsed = time.perf_counter() - start
    cpu = time.process_time() - cpu0
    for client in clients:
        await client.aclose()
    return {
        "streams_s": total / elapsed,
        "chunks_s": chunks / elapsed,
        "cpu_s": cpu,
        "cpu_ms_per_stream": 1000 * cpu / total,
        "failed": failed,
    }


def main() -> None:
    url, total, concurrency, loop = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    transport: Transport = "aiohttp" if sys.argv[5:6] == ["aiohttp"] else "httpcore"
    per_client = int(sys.argv[6]) if len(sys.argv) > 6 else concurrency
    work = read_all(url, total, concurrency, transport, per_client)
    if loop == "uvloop":
        import uvloop

        result = uvloop.run(work)
    else:
        result = asyncio.run(work)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
