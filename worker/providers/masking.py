"""Masking an upstream's key in what it answers, also when the key is cut across two chunks.

An upstream that echoes the key it was sent (in an error, or in a 200 answer) must not get it
into a Redis stream, the database or a result. ``Redactor`` masks a text that arrives in
pieces: it holds back the end of each piece while that end could be the start of the key.
"""

from __future__ import annotations

from typing import Any

from worker.providers.errors import StreamInterrupted, UpstreamError
from worker.providers.interface import Final, Item, TextDelta, ToolCallDelta

MASK = "***"


def redact(text: str, secret: str) -> str:
    """``text`` with every occurrence of ``secret`` masked."""
    return text.replace(secret, MASK) if secret and secret in text else text


def redact_json(value: Any, secret: str) -> Any:
    """A JSON value with the secret masked in every string (keys included)."""
    if not secret:
        return value
    if isinstance(value, str):
        return redact(value, secret)
    if isinstance(value, list):
        return [redact_json(v, secret) for v in value]
    if isinstance(value, dict):
        return {redact(k, secret): redact_json(v, secret) for k, v in value.items()}
    return value


def mask_error(exc: UpstreamError, secret: str) -> UpstreamError:
    """The error with the secret masked in its message, its body and the text it carries."""
    if secret:
        exc.message = redact(exc.message, secret)
        exc.args = (exc.message,)
        exc.body = redact_json(exc.body, secret)
        if isinstance(exc, StreamInterrupted):
            exc.partial_text = redact(exc.partial_text, secret)
    return exc


class Redactor:
    """Masks ``secret`` in a text fed piece by piece; what it returns is safe to show."""

    __slots__ = ("_held", "_secret")

    def __init__(self, secret: str) -> None:
        self._secret = secret
        self._held = ""

    def feed(self, piece: str) -> str:
        """The masked text that is certain now; a possible start of the key is held back."""
        secret = self._secret
        if not secret:
            return piece
        text = redact(self._held + piece, secret) if self._held else redact(piece, secret)
        keep = _partial_tail(text, secret)
        self._held = text[len(text) - keep :] if keep else ""
        return text[: len(text) - keep] if keep else text

    def finish(self) -> str:
        """What was held back: the text ended, so it was not the key."""
        held, self._held = self._held, ""
        return held


def _partial_tail(text: str, secret: str) -> int:
    """The length of the longest end of ``text`` that is a proper start of ``secret``."""
    first = secret[0]
    start = max(0, len(text) - len(secret) + 1)
    i = text.find(first, start)
    while i != -1:
        if secret.startswith(text[i:]):
            return len(text) - i
        i = text.find(first, i + 1)
    return 0


class DeltaMasker:
    """Masks the key in a provider's deltas as they stream, and in its final record."""

    __slots__ = ("_pieces", "secret")

    def __init__(self, secret: str) -> None:
        self.secret = secret
        # One redactor per text that streams: a choice's content, a tool call's arguments.
        self._pieces: dict[tuple[int, int], Redactor] = {}

    def mask(self, item: Item) -> Item | None:
        """The item with the key masked; None while all it holds may be the key's start."""
        if not self.secret:
            return item
        if isinstance(item, TextDelta):
            text = self._redactor(item.choice, -1).feed(item.text)
            return TextDelta(text, item.choice) if text else None
        if isinstance(item, ToolCallDelta):
            arguments = self._redactor(item.choice, item.index).feed(item.arguments)
            tool_id = None if item.id is None else redact(item.id, self.secret)
            name = None if item.name is None else redact(item.name, self.secret)
            if not (arguments or tool_id or name):
                return None
            return ToolCallDelta(item.choice, item.index, arguments, tool_id, name)
        return Final(
            body=redact_json(item.body, self.secret),
            finish_reason=item.finish_reason,
            usage=item.usage,
            tool_calls=redact_json(item.tool_calls, self.secret),
            response_id=item.response_id,
            model=item.model,
        )

    def flush(self) -> list[Item]:
        """What was held back, now that the answer has ended."""
        out: list[Item] = []
        for (choice, index), redactor in self._pieces.items():
            if held := redactor.finish():
                out.append(
                    TextDelta(held, choice) if index < 0 else ToolCallDelta(choice, index, held)
                )
        return out

    def _redactor(self, choice: int, index: int) -> Redactor:
        redactor = self._pieces.get((choice, index))
        if redactor is None:
            redactor = self._pieces[(choice, index)] = Redactor(self.secret)
        return redactor
