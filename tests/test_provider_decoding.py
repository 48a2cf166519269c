"""The answer's bytes to text at the byte level, through ``httpx.MockTransport``, on both paths.

The network cuts the body anywhere: a character split across chunks must come out whole
(the seed garbled it), a body that ends inside a character or is not UTF-8 is an error,
and an HTML page served as the answer is refused however its first bytes arrive.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from tests.support.provider import PATHS
from worker.providers.aivvm import Aivvm
from worker.providers.errors import NotAnAnswer, StreamInterrupted, UpstreamError

pytestmark = pytest.mark.usefixtures("clean_settings")

TEXT = "Привет 👋 мир"  # 2-byte Cyrillic letters and a 4-byte emoji
DATA = TEXT.encode()


class Pieces(httpx.SyncByteStream, httpx.AsyncByteStream):
    """A response body delivered as exactly these network chunks, then maybe a read error."""

    def __init__(self, pieces: list[bytes], error: Exception | None = None) -> None:
        self.pieces = pieces
        self.error = error

    def __iter__(self) -> Iterator[bytes]:
        yield from self.pieces
        if self.error is not None:
            raise self.error

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for piece in self.pieces:
            yield piece
        if self.error is not None:
            raise self.error


def stream(
    path: str,
    pieces: list[bytes],
    error: Exception | None = None,
    content_type: str = "text/plain; charset=utf-8",
) -> tuple[list[str], UpstreamError | None]:
    """The chunks the provider yields for this body, and the error it ended with, if any."""

    def answer(request: httpx.Request) -> httpx.Response:
        headers = {"content-type": content_type}
        return httpx.Response(200, headers=headers, stream=Pieces(pieces, error))

    transport = httpx.MockTransport(answer)
    kwargs: dict[str, Any] = {"model": "gpt-4", "messages": [{"role": "user", "content": "Hi"}]}
    got: list[str] = []
    if path == "sync":
        with httpx.Client(transport=transport) as client:
            try:
                for chunk in Aivvm.create_completion(stream=True, client=client, **kwargs):
                    got.append(chunk)
            except UpstreamError as exc:
                return got, exc
        return got, None

    async def main() -> UpstreamError | None:
        async with httpx.AsyncClient(transport=transport) as client:
            try:
                async for chunk in Aivvm.create_async_generator(client=client, **kwargs):
                    got.append(chunk)
            except UpstreamError as exc:
                return exc
        return None

    return got, asyncio.run(main())


@pytest.mark.parametrize("path", PATHS)
def test_characters_split_across_chunks_come_out_whole(path: str) -> None:
    # П cut after its first byte; 👋 cut after its second, then after its third.
    pieces = [DATA[:1], DATA[1:15], DATA[15:16], DATA[16:]]
    assert DATA[:1] == b"\xd0" and DATA[13:17] == "👋".encode()
    got, error = stream(path, pieces)
    assert error is None
    assert got == ["Привет ", "👋 мир"]


@pytest.mark.parametrize("path", PATHS)
def test_every_two_way_split_and_one_byte_at_a_time(path: str) -> None:
    for at in range(1, len(DATA)):
        got, error = stream(path, [DATA[:at], DATA[at:]])
        assert (error, "".join(got)) == (None, TEXT), at
    got, error = stream(path, [DATA[i : i + 1] for i in range(len(DATA))])
    assert (error, "".join(got)) == (None, TEXT)
    assert len(got) == len(TEXT)  # one chunk per character, none garbled or empty


@pytest.mark.parametrize("path", PATHS)
def test_body_ending_inside_a_character_is_interrupted(path: str) -> None:
    got, error = stream(path, [DATA[:9], DATA[9:15]])  # ends two bytes into 👋
    assert got == ["Прив", "ет "]
    assert isinstance(error, StreamInterrupted) and type(error) is StreamInterrupted
    assert str(error) == "the stream broke off: the body ended inside a character"
    assert (error.partial_text, error.received_chars) == ("Привет ", 7)


@pytest.mark.parametrize("path", PATHS)
def test_read_error_inside_a_character_keeps_only_whole_ones(path: str) -> None:
    got, error = stream(path, [DATA[:5]], error=httpx.ReadError("connection reset by peer"))
    assert got == ["Пр"]
    assert type(error) is StreamInterrupted
    assert str(error) == "the stream broke off: ReadError: connection reset by peer"
    assert error.partial_text == "Пр"


@pytest.mark.parametrize("path", PATHS)
def test_bytes_that_are_not_utf8_are_not_an_answer(path: str) -> None:
    got, error = stream(path, [b"Fine ", b"\xff thanks"])
    assert got == ["Fine "]
    assert type(error) is NotAnAnswer
    assert str(error) == "the answer is not UTF-8 text (invalid start byte)"


@pytest.mark.parametrize("path", PATHS)
def test_html_page_sent_as_text_is_refused_even_split(path: str) -> None:
    page = [b"\n  <!DOC", b"TYPE html><html><head><title>Blocked</title>", b"</head></html>"]
    got, error = stream(path, page)
    assert got == []
    assert type(error) is NotAnAnswer
    assert str(error) == "the upstream answered 200 with an HTML page: Blocked"
    assert error.status_code == 200


@pytest.mark.parametrize("path", PATHS)
def test_text_that_merely_starts_with_a_bracket_is_text(path: str) -> None:
    got, error = stream(path, [b"<", b"b>bold</b> and <html"])
    assert (error, "".join(got)) == (None, "<b>bold</b> and <html")
    got, error = stream(path, [b"<"])  # undecided to the end: text after all
    assert (error, got) == (None, ["<"])
