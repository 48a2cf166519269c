"""The request the Aivvm provider sends: the seed's defaults, its options, and where it goes.

The upstream is ``httpx.MockTransport``, recording each request, so the test sees the exact
method, URL, headers and JSON body. The answers over real HTTP: test_provider.py.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from tests.support.provider import GREETING, MODEL_TABLE, SYSTEM_PROMPT, agather, run, set_env
from worker.providers.aivvm import Aivvm
from worker.providers.base import AbstractProvider

pytestmark = pytest.mark.usefixtures("clean_settings")


@pytest.fixture
def recorded() -> Iterator[tuple[httpx.Client, list[httpx.Request]]]:
    """A client whose upstream records every request and answers 'Fine, thanks.'."""
    requests: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        if request.url.path == "/api/models":
            return httpx.Response(200, json=[{"id": "gpt-4", "name": "GPT-4"}])
        return httpx.Response(200, text="Fine, thanks.")

    with httpx.Client(transport=httpx.MockTransport(answer)) as client:
        yield client, requests


def sent_body(client: httpx.Client, requests: list[httpx.Request], **kwargs: Any) -> Any:
    """The JSON body of the one request a completion sent."""
    kwargs.setdefault("model", "gpt-3.5-turbo")
    kwargs.setdefault("messages", GREETING)
    chunks = list(Aivvm.create_completion(stream=True, client=client, **kwargs))
    assert chunks == ["Fine, thanks."]
    assert len(requests) == 1
    return json.loads(requests[0].content)


def test_class_attributes_of_the_original() -> None:
    assert issubclass(Aivvm, AbstractProvider)
    assert Aivvm.url == "https://chat.aivvm.com"
    assert (Aivvm.supports_stream, Aivvm.working) == (True, False)
    assert (Aivvm.supports_gpt_35_turbo, Aivvm.supports_gpt_4) == (True, True)
    assert Aivvm.models == tuple(MODEL_TABLE)


def test_the_request_with_defaults(recorded: tuple[httpx.Client, list[httpx.Request]]) -> None:
    client, requests = recorded
    body = sent_body(client, requests, model="")
    assert body == {
        "model": {"id": "gpt-3.5-turbo", "name": "GPT-3.5"},
        "messages": [{"role": "user", "content": "Привет! Как дела?"}],
        "key": "",
        "prompt": SYSTEM_PROMPT,
        "temperature": 0.7,
    }
    request = requests[0]
    assert request.method == "POST"
    assert str(request.url) == "https://chat.aivvm.com/api/chat"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["accept"] == "text/event-stream"
    assert request.headers["accept-language"] == "en-US,en;q=0.9"
    assert request.headers["user-agent"].startswith("Mozilla/5.0 ")
    assert request.headers["origin"] == "https://chat.aivvm.com"
    assert request.headers["referer"] == "https://chat.aivvm.com/"


@pytest.mark.parametrize(("model", "name"), MODEL_TABLE.items())
def test_each_model_of_the_table_is_sent_as_id_and_name(
    recorded: tuple[httpx.Client, list[httpx.Request]], model: str, name: str
) -> None:
    body = sent_body(*recorded, model=model)
    assert body["model"] == {"id": model, "name": name}


def test_unknown_model_is_a_value_error_before_any_request(
    recorded: tuple[httpx.Client, list[httpx.Request]],
) -> None:
    client, requests = recorded
    with pytest.raises(ValueError) as caught:
        list(Aivvm.create_completion("gpt-5", GREETING, True, client=client))
    assert str(caught.value) == "Model is not supported: gpt-5"
    with pytest.raises(ValueError) as caught:
        run(agather(model="GPT-4", messages=GREETING, base_url="http://127.0.0.1:9"))
    assert str(caught.value) == "Model is not supported: GPT-4"
    assert requests == []


def test_system_message_and_temperature(
    recorded: tuple[httpx.Client, list[httpx.Request]],
) -> None:
    body = sent_body(*recorded, system_message="Answer in one word.", temperature=0.2)
    assert (body["prompt"], body["temperature"]) == ("Answer in one word.", 0.2)


def test_key_from_kwargs_else_environment(
    recorded: tuple[httpx.Client, list[httpx.Request]], monkeypatch: pytest.MonkeyPatch
) -> None:
    client, requests = recorded
    assert sent_body(client, requests, key="sk-given")["key"] == "sk-given"
    requests.clear()
    set_env(monkeypatch, AIVBATCH_AIVVM_KEY="sk-from-env")
    assert sent_body(client, requests)["key"] == "sk-from-env"
    requests.clear()
    assert sent_body(client, requests, key=SecretStr("sk-secret"))["key"] == "sk-secret"
    requests.clear()
    assert sent_body(client, requests, key="")["key"] == ""  # an explicit empty key wins


def test_base_url_beats_environment_beats_class_url(
    recorded: tuple[httpx.Client, list[httpx.Request]], monkeypatch: pytest.MonkeyPatch
) -> None:
    client, requests = recorded

    def chat_url(**kwargs: Any) -> str:
        requests.clear()
        sent_body(client, requests, **kwargs)
        return str(requests[0].url)

    assert chat_url() == "https://chat.aivvm.com/api/chat"
    set_env(monkeypatch, AIVBATCH_AIVVM_URL="http://env.test:8765/")
    assert chat_url() == "http://env.test:8765/api/chat"
    assert requests[0].headers["origin"] == "http://env.test:8765"
    assert chat_url(base_url="http://given.test/v1") == "http://given.test/v1/api/chat"
    assert requests[0].headers["referer"] == "http://given.test/v1/"
    requests.clear()
    Aivvm.list_models(client=client)
    assert str(requests[0].url) == "http://env.test:8765/api/models"
    assert requests[0].headers["accept"] == "application/json"


def test_alist_models_reads_api_models(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return httpx.Response(200, json=[{"id": "gpt-4"}])

    async def main() -> list[dict[str, str]]:
        async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as client:
            return await Aivvm.alist_models(client=client)

    set_env(monkeypatch, AIVBATCH_AIVVM_URL="http://env.test")
    assert run(main()) == [{"id": "gpt-4", "name": "gpt-4"}]
    assert seen == ["http://env.test/api/models"]
