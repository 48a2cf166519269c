"""The provider interface of the gpt4free family, with an async streaming counterpart."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Iterator
from typing import Any, ClassVar, TypedDict


class Message(TypedDict):
    """One chat message."""

    role: str
    content: str


Messages = list[Message]
CreateResult = Iterator[str]
AsyncResult = AsyncIterator[str]


class AbstractProvider(ABC):
    """A chat upstream: class attributes describe it, class methods stream its answers."""

    url: ClassVar[str]
    working: ClassVar[bool] = False
    supports_stream: ClassVar[bool] = False
    supports_message_history: ClassVar[bool] = True
    supports_gpt_35_turbo: ClassVar[bool] = False
    supports_gpt_4: ClassVar[bool] = False
    default_model: ClassVar[str]
    models: ClassVar[tuple[str, ...]]

    @classmethod
    @abstractmethod
    def create_completion(
        cls, model: str, messages: Messages, stream: bool, **kwargs: Any
    ) -> CreateResult:
        """Yield the answer as text chunks (one chunk holding it all when ``stream`` is false)."""

    @classmethod
    @abstractmethod
    def create_async_generator(cls, model: str, messages: Messages, **kwargs: Any) -> AsyncResult:
        """Yield the answer as text chunks, as they arrive, without blocking the event loop."""

    @classmethod
    def params(cls) -> str:
        """A one-line description of the provider, as gpt4free prints it."""
        return f"{cls.__name__} supports: (model: str, messages: Messages, stream: bool)"
