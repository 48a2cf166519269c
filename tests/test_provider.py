"""The Aivvm provider against the project's emulator over real HTTP: the seed's example run
unchanged, both streaming paths, the model list, and the shared clients.

The request it sends: test_provider_request.py; error kinds: test_provider_errors.py;
decoding at the byte level: test_provider_decoding.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.emulator import EmulatorServer, marker
from tests.support.provider import GREETING, MODEL_TABLE, SYSTEM_PROMPT, agather, run, set_env
from worker.providers.aivvm import Aivvm
from worker.providers.base import Message
from worker.providers.http import shared_async_client, shared_client

pytestmark = pytest.mark.usefixtures("clean_settings")

ROOT = Path(__file__).resolve().parents[1]

# The seed document's example, word for word but for the two import lines.
SEED_EXAMPLE = """\
from worker.providers.aivvm import Aivvm
from worker.providers.base import Messages

# Создание инстанса класса Aivvm
provider = Aivvm()

# Создание списка сообщений для передачи в качестве контекста модели
messages: Messages = [
    {"role": "user", "content": "Привет! Как дела?"}
]

# Вызов функции `create_completion` для генерации текста
response = provider.create_completion(model="gpt-3.5-turbo", messages=messages, stream=True)

# Печать результата (в данном случае текст будет выводиться по частям)
for chunk in response:
    print(chunk)
"""


def answer_over_http(url: str, messages: list[Message], model: str = "gpt-3.5-turbo") -> str:
    """The emulator's answer to the body the seed sends, fetched without the provider."""
    body = {
        "model": {"id": model, "name": MODEL_TABLE[model]},
        "messages": messages,
        "key": "",
        "prompt": SYSTEM_PROMPT,
        "temperature": 0.7,
    }
    response = httpx.post(url + "/api/chat", json=body, timeout=10)
    assert response.status_code == 200, response.text
    return response.content.decode("utf-8")


def test_seed_example_runs_unchanged(
    emulator: Callable[..., EmulatorServer], tmp_path: Path
) -> None:
    upstream = emulator(ttfb_ms=0, delay_ms=10)
    expected = answer_over_http(upstream.url, GREETING)
    script = tmp_path / "seed_example.py"
    script.write_text(SEED_EXAMPLE, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIVBATCH_")}
    env |= {"AIVBATCH_AIVVM_URL": upstream.url, "PYTHONIOENCODING": "utf-8"}
    done = subprocess.run(
        [sys.executable, str(script)], cwd=ROOT, env=env, capture_output=True, timeout=60
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    out = done.stdout.decode("utf-8")
    assert out.endswith("\n")
    printed = out[:-1].split("\n")
    assert "".join(printed) == expected
    assert len(printed) > 1, printed
    assert any("\u0400" <= ch <= "\u04ff" for ch in expected)  # a Cyrillic answer


def test_create_completion_on_the_class(
    emulator: Callable[..., EmulatorServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    upstream = emulator(ttfb_ms=0, delay_ms=5)
    set_env(monkeypatch, AIVBATCH_AIVVM_URL=upstream.url)
    chunks = list(Aivvm.create_completion(model="gpt-3.5-turbo", messages=GREETING, stream=True))
    assert "".join(chunks) == answer_over_http(upstream.url, GREETING)
    assert len(chunks) > 1 and all(chunks)


def test_stream_false_yields_one_chunk_with_the_whole_answer(
    emulator: Callable[..., EmulatorServer],
) -> None:
    upstream = emulator(ttfb_ms=0, delay_ms=5)
    messages: list[Message] = [{"role": "user", "content": "Tell me about bridges"}]
    chunks = list(
        Aivvm().create_completion(
            model="gpt-4", messages=messages, stream=False, base_url=upstream.url
        )
    )
    assert chunks == [answer_over_http(upstream.url, messages, model="gpt-4")]


def test_list_models_sync_and_async(emulator: Callable[..., EmulatorServer]) -> None:
    upstream = emulator()
    table = [{"id": model, "name": name} for model, name in MODEL_TABLE.items()]
    assert Aivvm.list_models(upstream.url) == table
    assert run(Aivvm.alist_models(base_url=upstream.url)) == table


def test_sync_and_async_paths_give_the_same_text(emulator: Callable[..., EmulatorServer]) -> None:
    upstream = emulator(ttfb_ms=0)
    # Small chunks, apart on the wire: the emulator cuts inside Cyrillic characters.
    content = "Расскажи про мосты " + marker(chunks=12, chunk_size=20, delay_ms=15)
    messages: list[Message] = [{"role": "user", "content": content}]
    kwargs: dict[str, Any] = {"model": "gpt-3.5-turbo", "messages": messages}
    sync_chunks = list(Aivvm.create_completion(stream=True, base_url=upstream.url, **kwargs))
    async_chunks = run(agather(base_url=upstream.url, **kwargs))
    expected = answer_over_http(upstream.url, messages)
    assert "".join(sync_chunks) == "".join(async_chunks) == expected
    assert len(sync_chunks) > 1 and len(async_chunks) > 1
    assert sum("\u0400" <= ch <= "\u04ff" for ch in expected) > 50


def test_shared_sync_client_and_its_connection_are_reused(
    emulator: Callable[..., EmulatorServer],
) -> None:
    upstream = emulator(ttfb_ms=0, delay_ms=0)
    client = shared_client()
    local_ports: list[int] = []

    def on_response(response: httpx.Response) -> None:
        local_ports.append(response.extensions["network_stream"].get_extra_info("client_addr")[1])

    client.event_hooks = {"request": [], "response": [on_response]}
    for _ in range(2):
        assert list(Aivvm.create_completion("gpt-4", GREETING, True, base_url=upstream.url))
    assert Aivvm.list_models(upstream.url)
    assert shared_client() is client
    assert len(local_ports) == 3 and len(set(local_ports)) == 1, local_ports


def test_shared_async_client_and_its_connection_are_reused(
    emulator: Callable[..., EmulatorServer],
) -> None:
    # Seen from the server, whichever transport the client runs over.
    upstream = emulator(ttfb_ms=0, delay_ms=0)

    async def main() -> bool:
        client = shared_async_client()
        for _ in range(2):
            assert await agather(model="gpt-4", messages=GREETING, base_url=upstream.url)
        assert await Aivvm.alist_models(upstream.url)
        return shared_async_client() is client

    assert run(main())
    local_ports = [call["client"][1] for call in upstream.requests(3)]
    assert len(local_ports) == 3 and len(set(local_ports)) == 1, local_ports
