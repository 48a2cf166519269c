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


class CallFailed(Exception):
    """The API answered with an error (``status`` set), or could not be reached (None)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


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
        try:
            self.http = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout)
        except (httpx.InvalidURL, TypeError) as exc:
            raise CallFailed(f"{base_url!r} is not a usable API URL: {exc}") from exc

    def get(self, path: str, **params: Any) -> Any:
        """GET a JSON document."""
        query = {k: v for k, v in params.items() if v is not None}
        return self._json(self._send("GET", path, params=query))

    def post(self, path: str, body: Any = None) -> Any:
        """POST a JSON body; returns the JSON answer."""
        return self._json(self._send("POST", path, json=body))

    def delete(self, path: str) -> Any:
        """DELETE; returns the JSON answer."""
        return self._json(self._send("DELETE", path))

    def iter_bytes(self, path: str, **params: Any) -> Iterator[bytes]:
        """The blocks of a response body as they arrive, never the whole body at once."""
        query = {k: v for k, v in params.items() if v is not None}
        timeout = httpx.Timeout(30.0, read=None)
        try:
            with self.http.stream("GET", path, params=query, timeout=timeout) as resp:
                self._raise_for(resp)
                yield from resp.iter_bytes()
        except httpx.TransportError as exc:
            raise CallFailed(f"{self.base_url}: {_describe(exc)}") from exc

    def download(self, path: str, out: IO[bytes], **params: Any) -> int:
        """Stream a response body into ``out``; returns the number of bytes written."""
        written = 0
        for block in self.iter_bytes(path, **params):
            out.write(block)
            written += len(block)
        return written

    def events(
        self, path: str, last_event_id: str | None = None, **params: Any
    ) -> Iterator[SseEvent]:
        """Follow a server-sent event stream until the server closes it."""
        query = {k: v for k, v in params.items() if v is not None}
        timeout = httpx.Timeout(10.0, read=None)
        headers = {"Accept": "text/event-stream"}
        if last_event_id is not None:
            headers["Last-Event-ID"] = last_event_id
        try:
            with self.http.stream(
                "GET", path, params=query, headers=headers, timeout=timeout
            ) as resp:
                self._raise_for(resp)
                yield from parse_sse(resp.iter_lines())
        except httpx.TransportError as exc:
            raise CallFailed(f"{self.base_url}: {_describe(exc)}") from exc

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            resp = self.http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise CallFailed(f"{self.base_url}: {_describe(exc)}") from exc
        self._raise_for(resp)
        return resp

    def _json(self, resp: httpx.Response) -> Any:
        if not resp.content:
            return None
        try:
            return resp.json()
        except ValueError as exc:
            # Something else answers at that address (a web server, a proxy's page).
            raise CallFailed(
                f"{self.base_url}{resp.url.path}: the answer is not JSON; is this an aivbatch API?",
                resp.status_code,
            ) from exc

    @staticmethod
    def _raise_for(resp: httpx.Response) -> None:
        if resp.status_code < 400:
            return
        resp.read()
        raise CallFailed(f"HTTP {resp.status_code}: {error_message(resp)}", resp.status_code)

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


def _describe(exc: httpx.TransportError) -> str:
    """A transport error in words, even when httpx gives it no message (some timeouts)."""
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def error_message(resp: httpx.Response) -> str:
    """The message of an error answer, in either the native or the OpenAI shape."""
    try:
        body = resp.json()
    except ValueError:
        return resp.text.strip()[:500] or resp.reason_phrase
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and "message" in error:
            lines = error.get("lines")
            if isinstance(lines, list) and len(lines) > 1:
                return f"{error['message']} (and {len(lines) - 1} more bad lines)"
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
