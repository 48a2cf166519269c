"""The answer's bytes to text as they arrive, refusing an HTML page served instead of text.

The body is raw UTF-8 cut wherever the network cut it, so a character may straddle two
chunks: one incremental decoder per answer keeps its first bytes until the rest arrives
(the seed decoded each chunk on its own and garbled exactly these). Its per-chunk cost is
one ``decode`` and one ``append``; the HTML check looks only at the body's first bytes.
"""

from __future__ import annotations

import codecs

from worker.providers.errors import NotAnAnswer, StreamInterrupted, StreamStalled

_WHITESPACE = b" \t\r\n\f\v"
_HTML_OPENINGS = (b"<!doctype html", b"<html")
_LONGEST_OPENING = max(len(opening) for opening in _HTML_OPENINGS)
# A body that is still only whitespace after this many bytes is taken for text.
_SNIFF_LIMIT = 1024


def html_verdict(head: bytes) -> bool | None:
    """Whether a body starting with ``head`` is an HTML page; None while it cannot tell yet."""
    start = head.lstrip(_WHITESPACE)
    if not start:
        return None if len(head) < _SNIFF_LIMIT else False
    if start[:1] != b"<":
        return False
    lowered = start[:_LONGEST_OPENING].lower()
    if any(lowered.startswith(opening) for opening in _HTML_OPENINGS):
        return True
    if any(opening.startswith(lowered) for opening in _HTML_OPENINGS):
        return None
    return False


class TextStream:
    """One answer's text, decoded incrementally; ``html`` holds the head of an HTML page."""

    __slots__ = ("_decoder", "_head", "html", "parts")

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")("strict")
        # Bytes held back until the HTML check can decide; None once the body is text.
        self._head: bytes | None = b""
        self.html: bytes | None = None
        self.parts: list[str] = []

    @property
    def text(self) -> str:
        """Everything decoded so far."""
        return "".join(self.parts)

    def feed(self, raw: bytes) -> str:
        """The complete characters that ``raw`` ends (maybe ''); '' with ``html`` set on a page."""
        if self._head is not None:
            raw = self._sniff(raw)
            if not raw:
                return ""
        try:
            text = self._decoder.decode(raw)
        except UnicodeDecodeError as exc:
            raise NotAnAnswer(
                f"the answer is not UTF-8 text ({exc.reason})", status_code=200
            ) from None
        if text:
            self.parts.append(text)
        return text

    def finish(self) -> str:
        """The last characters at the end of the body; a character cut in half means a cut."""
        # A head still undecided at the end (say, a lone "<") is text after all.
        raw, self._head = self._head or b"", None
        try:
            text = self._decoder.decode(raw, final=True)
        except UnicodeDecodeError:
            raise self.interrupted("the body ended inside a character") from None
        if text:
            self.parts.append(text)
        return text

    def interrupted(self, why: str) -> StreamInterrupted:
        """The error for an answer that broke off now, carrying what had arrived."""
        return StreamInterrupted(f"the stream broke off: {why}", partial_text=self.text)

    def stalled(self, seconds: float | None) -> StreamStalled:
        """The error for an answer that went silent, carrying what had arrived."""
        return StreamStalled(
            f"no data from the upstream for {seconds} s", partial_text=self.text, status_code=200
        )

    def _sniff(self, raw: bytes) -> bytes:
        head = self._head + raw if self._head else raw
        verdict = html_verdict(head)
        if verdict is None:
            self._head = head
            return b""
        self._head = None
        if verdict:
            self.html = head
            return b""
        return head
