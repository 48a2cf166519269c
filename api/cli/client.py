"""The HTTP side of the client commands: base URL and bearer key, JSON, JSONL and SSE."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import IO, Annotated, Any

import httpx
import typer

DEFAULT_API_URL = "http://127.0.0.1:8000"

ApiUrl = Annotated[
    str,
    typer.Option("--api-url", envvar="AIVBATCH_API_URL", help="Base URL of the aivbatch API."),
]
ApiKey = Annotated[
    str | None,
    typer.Option("--api-key", envvar="AIVBATCH_API_KEY", help="API key, sent as a bearer token."),
]


class ApiError(Exception):
    """The API answered with an error, or could not be reached."""


@dataclass(frozen=True, slots=True)
class SseEvent:
    """One server-sent event."""

    event: str
    data: str
    id: str | None = None

    def json(self) -> Any:
        """The data, parsed as JSON."""
        return json.loads(self.data)


class Api:
    """A client of one aivbatch API; one connection pool for all calls of a command."""

    def __init__(self, base_url: str, api_key: str | None = None, timeout: float = 30.0) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.base_url = base_url.rstrip("/")
        self.http = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout)

    def get(self, path: str, **params: Any) -> Any:
        """GET a JSON document."""
        query = {k: v for k, v in params.items() if v is not None}
        return self._json(self._send("GET", path, params=query))

    def post(self, path: str, body: Any = None) -> Any:
        """POST a JSON body; returns the JSON answer."""
        return self._json(self._send("POST", path, json=body))

    def download(self, path: str, out: IO[bytes]) -> int:
        """Stream a response body into ``out``; returns the number of bytes written."""
        written = 0
        try:
            with self.http.stream("GET", path, timeout=httpx.Timeout(30.0, read=None)) as resp:
                self._raise_for(resp)
                for block in resp.iter_bytes():
                    out.write(block)
                    written += len(block)
        except httpx.TransportError as exc:
            raise ApiError(f"{self.base_url}: {exc}") from exc
        return written

    def events(self, path: str, **params: Any) -> Iterator[SseEvent]:
        """Follow a server-sent event stream until the server closes it."""
        query = {k: v for k, v in params.items() if v is not None}
        timeout = httpx.Timeout(10.0, read=None)
        headers = {"Accept": "text/event-stream"}
        try:
            with self.http.stream(
                "GET", path, params=query, headers=headers, timeout=timeout
            ) as resp:
                self._raise_for(resp)
                yield from parse_sse(resp.iter_lines())
        except httpx.TransportError as exc:
            raise ApiError(f"{self.base_url}: {exc}") from exc

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            resp = self.http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise ApiError(f"{self.base_url}: {exc}") from exc
        self._raise_for(resp)
        return resp

    @staticmethod
    def _json(resp: httpx.Response) -> Any:
        return resp.json() if resp.content else None

    @staticmethod
    def _raise_for(resp: httpx.Response) -> None:
        if resp.status_code < 400:
            return
        resp.read()
        raise ApiError(f"HTTP {resp.status_code}: {error_message(resp)}")

    def close(self) -> None:
        """Close the connection pool."""
        self.http.close()

    def __enter__(self) -> Api:
        return self

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _tb: TracebackType | None,
    ) -> None:
        self.close()


def error_message(resp: httpx.Response) -> str:
    """The message of an error answer, in either the native or the OpenAI shape."""
    try:
        body = resp.json()
    except ValueError:
        return resp.text.strip()[:500] or resp.reason_phrase
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and "message" in error:
            return str(error["message"])
        if "detail" in body:
            detail = body["detail"]
            return detail if isinstance(detail, str) else json.dumps(detail, ensure_ascii=False)
    return json.dumps(body, ensure_ascii=False)[:500]


class SseParser:
    """Turns the lines of an event-stream body into events, one line at a time."""

    def __init__(self) -> None:
        self.event = "message"
        self.data: list[str] = []
        self.id: str | None = None

    def feed(self, line: str) -> SseEvent | None:
        """Take one line; returns an event when the line ends one."""
        if not line:
            event = SseEvent(self.event, "\n".join(self.data), self.id) if self.data else None
            self.event, self.data = "message", []
            return event
        if line.startswith(":"):
            return None  # a comment: the server's keep-alive
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            self.event = value
        elif name == "data":
            self.data.append(value)
        elif name == "id":
            self.id = value
        return None


def parse_sse(lines: Iterator[str]) -> Iterator[SseEvent]:
    """Server-sent events from the lines of a response body."""
    parser = SseParser()
    for line in lines:
        event = parser.feed(line)
        if event is not None:
            yield event
    last = parser.feed("")
    if last is not None:
        yield last
