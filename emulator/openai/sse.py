"""Server-sent events: the plain framing, and variations a conforming parser reads the same.

Plain framing is what OpenAI and vLLM send: ``data: <json>`` and a blank line per event
(``event: <name>`` first for the Responses API's named events), ending ``data: [DONE]``
where the endpoint has it. The marker ``sse=`` picks variations, each still valid SSE:

- ``crlf``: every line ends with CRLF instead of LF;
- ``comments``: a ``: keep-alive`` comment and a blank line before every event;
- ``multiline``: each event's JSON spread over several ``data:`` lines (one per line of the
  indented JSON), which a parser joins with "\\n", between tokens where JSON allows it;
- ``split``: each network write cut into pieces sent apart: the bytes of its first
  multi-byte UTF-8 character one at a time, its middle, and its final line ends.
"""

from __future__ import annotations

import json

from emulator.pacing import Write, body_message

Event = tuple[bytes | None, bytes]  # (event name or None, data)
DONE: Event = (None, b"[DONE]")
CONTENT_TYPE = b"text/event-stream; charset=utf-8"
_COMMENT = b": keep-alive\n\n"


def _plain(event: Event) -> bytes:
    name, data = event
    if name is None:
        return b"data: " + data + b"\n\n"
    return b"event: " + name + b"\ndata: " + data + b"\n\n"


def _varied(event: Event, variations: frozenset[str]) -> bytes:
    name, data = event
    lines = [b"event: " + name] if name is not None else []
    if "multiline" in variations and data[:1] == b"{":
        text = json.dumps(json.loads(data), indent=1, ensure_ascii=False).encode()
        lines += [b"data: " + line for line in text.split(b"\n")]
    else:
        lines.append(b"data: " + data)
    framed = b"\n".join(lines) + b"\n\n"
    if "comments" in variations:
        framed = _COMMENT + framed
    if "crlf" in variations:
        # JSON escapes every newline inside strings, so each LF here ends a line.
        framed = framed.replace(b"\n", b"\r\n")
    return framed


def _char_length(lead: int) -> int:
    return 2 if lead < 0xE0 else 3 if lead < 0xF0 else 4


def _seams(data: bytes) -> list[int]:
    """Where to cut one write: through a character, mid-event, between its last bytes."""
    n = len(data)
    cuts = {n // 2, n - 1, n - 2}
    lead = next((i for i, byte in enumerate(data) if byte >= 0xC0), None)
    if lead is not None:
        cuts.update(range(lead, lead + _char_length(data[lead]) + 1))
    return sorted(c for c in cuts if 0 < c < n)


def _split(data: bytes, last: bool) -> Write:
    bounds = [0, *_seams(data), len(data)]
    pieces = [data[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]
    final = len(pieces) - 1
    return tuple(body_message(p, not (last and i == final)) for i, p in enumerate(pieces))


def frame(writes: list[list[Event]], variations: frozenset[str]) -> tuple[Write, ...]:
    """The body's writes: each list of events framed, with the variations asked for."""
    last = len(writes) - 1
    if not variations:
        return tuple(
            (body_message(b"".join(_plain(e) for e in events), i < last),)
            for i, events in enumerate(writes)
        )
    framed = [b"".join(_varied(e, variations) for e in events) for events in writes]
    if "split" in variations:
        return tuple(_split(data, i == last) for i, data in enumerate(framed))
    return tuple((body_message(data, i < last),) for i, data in enumerate(framed))
