"""The seed's Aivvm provider behind the engine's interface, unchanged underneath.

It answers text only: no usage (the protocol reports none), no tool calls, one choice.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, ClassVar, cast

import httpx

from models.endpoints import CHAT
from worker.providers.aivvm import Aivvm
from worker.providers.base import Messages
from worker.providers.interface import Final, Item, Provider, Request, TextDelta
from worker.providers.masking import DeltaMasker


class AivvmUpstream(Provider):
    """One Aivvm-protocol upstream."""

    kind: ClassVar[str] = "aivvm"
    endpoints: ClassVar[tuple[str, ...]] = (CHAT,)

    def __init__(self, name: str, *, base_url: str, api_key: str = "") -> None:
        super().__init__(name)
        self.base_url = base_url
        self._secret = api_key

    def __repr__(self) -> str:
        return f"AivvmUpstream({self.name!r})"

    async def stream(self, request: Request, client: httpx.AsyncClient) -> AsyncIterator[Item]:
        """Yield the answer's text (the key masked), then a ``Final`` without usage."""
        kwargs: dict[str, Any] = {"client": client, "key": self._secret, "base_url": self.base_url}
        if request.temperature is not None:
            kwargs["temperature"] = request.temperature
        if request.system_message is not None:
            kwargs["system_message"] = request.system_message
        masker = DeltaMasker(self._secret)
        messages = cast(Messages, request.messages)
        async for text in Aivvm.create_async_generator(request.model, messages, **kwargs):
            if (masked := masker.mask(TextDelta(text))) is not None:
                yield masked
        for held in masker.flush():
            yield held
        yield Final()
