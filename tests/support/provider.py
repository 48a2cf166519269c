"""Helpers for the Aivvm provider tests (tests/test_provider*.py).

``clean_settings`` is a fixture (not autouse; the provider test modules ask for it through
``pytestmark``): no upstream variables from the caller, settings re-read, and the shared
clients closed afterwards. ``set_env`` sets variables and re-reads settings; ``run`` runs a
coroutine on a fresh loop and closes that loop's shared AsyncClient; ``agather`` collects the
async path's chunks; ``closed_port`` is a local port where nothing listens. The constants
``SYSTEM_PROMPT``, ``MODEL_TABLE`` and ``GREETING`` are the provider's defaults and the seed's
message; ``PATHS`` names the sync and async streaming paths for ``parametrize``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar

import pytest

from cli.embedded import free_port
from models.settings import get_settings
from worker.providers.aivvm import Aivvm
from worker.providers.base import Message
from worker.providers.http import aclose_shared_clients, close_shared_clients

T = TypeVar("T")

# The two streaming paths a test runs through: create_completion and create_async_generator.
PATHS = ["sync", "async"]

# Written out here rather than imported, so a change to the provider's defaults fails a test.
SYSTEM_PROMPT = (
    "You are ChatGPT, a large language model trained by OpenAI. Follow the user's instructions "
    "carefully. Respond using markdown."
)
MODEL_TABLE = {
    "gpt-3.5-turbo": "GPT-3.5",
    "gpt-3.5-turbo-0613": "GPT-3.5-0613",
    "gpt-3.5-turbo-16k": "GPT-3.5-16K",
    "gpt-3.5-turbo-16k-0613": "GPT-3.5-16K-0613",
    "gpt-4": "GPT-4",
    "gpt-4-0613": "GPT-4-0613",
    "gpt-4-32k": "GPT-4-32K",
    "gpt-4-32k-0613": "GPT-4-32K-0613",
}
GREETING: list[Message] = [{"role": "user", "content": "Привет! Как дела?"}]


@pytest.fixture
def clean_settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No upstream variables from the caller; settings re-read, shared clients closed after."""
    for name in ("AIVBATCH_AIVVM_URL", "AIVBATCH_AIVVM_KEY", "AIVBATCH_STALL_TIMEOUT"):
        monkeypatch.delenv(name, raising=False)
    get_settings.cache_clear()
    yield
    close_shared_clients()
    get_settings.cache_clear()


def set_env(monkeypatch: pytest.MonkeyPatch, **values: str) -> None:
    """Set these environment variables for the test and re-read the settings."""
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run on a fresh loop, closing that loop's shared AsyncClient inside it."""

    async def main() -> T:
        try:
            return await coro
        finally:
            await aclose_shared_clients()

    return asyncio.run(main())


async def agather(**kwargs: Any) -> list[str]:
    """The chunks of ``Aivvm.create_async_generator(**kwargs)``, in order."""
    return [chunk async for chunk in Aivvm.create_async_generator(**kwargs)]


def closed_port() -> int:
    """A local port that was free a moment ago, so nothing listens on it."""
    return free_port()
