"""The seed's Aivvm provider behind the engine's interface (worker/providers/aivvm_upstream.py):
what it sends, what it yields, and that an echoed key never gets out, against
``httpx.MockTransport``. The seed's own interface: test_provider*.py.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import httpx

from worker.providers.aivvm_upstream import AivvmUpstream
from worker.providers.interface import Final, Item, Request, TextDelta

KEY = "sk-aivvm-UNMISTAKABLE-key-91b2"


def run(parts: list[bytes], request: Request) -> tuple[list[Item], list[httpx.Request]]:
    """Every item the provider yields for an answer read in these pieces, and the requests."""
    sent: list[httpx.Request] = []

    async def pieces() -> AsyncIterator[bytes]:
        for part in parts:
            yield part

    def answer(req: httpx.Request) -> httpx.Response:
        sent.append(req)
        return httpx.Response(200, headers={"content-type": "text/plain"}, content=pieces())

    async def main() -> list[Item]:
        async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as client:
            provider = AivvmUpstream("seed", base_url="http://aivvm.test", api_key=KEY)
            return [item async for item in provider.stream(request, client)]

    return asyncio.run(main()), sent


def test_the_seed_request_with_the_jobs_options_and_text_only_out() -> None:
    request = Request(
        "/v1/chat/completions",
        "gpt-4",
        [{"role": "user", "content": "Привет!"}],
        temperature=0.2,
        system_message="Be brief.",
    )
    items, sent = run(["Всё ".encode(), "хорошо.".encode()], request)
    assert str(sent[0].url) == "http://aivvm.test/api/chat"
    body = json.loads(sent[0].content)
    assert body == {
        "model": {"id": "gpt-4", "name": "GPT-4"},
        "messages": [{"role": "user", "content": "Привет!"}],
        "key": KEY,
        "prompt": "Be brief.",
        "temperature": 0.2,
    }
    assert "".join(i.text for i in items if isinstance(i, TextDelta)) == "Всё хорошо."
    assert items[-1] == Final()  # no body, usage or tool calls: the protocol has none


def test_an_echoed_key_cut_across_chunks_never_gets_out() -> None:
    text = f"The key you sent is {KEY}. Keep it."
    at = text.index(KEY) + 9
    request = Request("/v1/chat/completions", "gpt-4", [{"role": "user", "content": "key?"}])
    items, _ = run([text[:at].encode(), text[at:].encode()], request)
    deltas = [i.text for i in items if isinstance(i, TextDelta)]
    assert "".join(deltas) == "The key you sent is ***. Keep it."
    assert not any(KEY[:9] in d for d in deltas)
