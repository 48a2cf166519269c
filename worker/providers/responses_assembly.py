"""Responses API events (``response.output_text.delta``, ``response.completed``…) assembled
into the final ``response`` object, as worker/providers/assembly.py does for chat."""

from __future__ import annotations

from typing import Any

from worker.providers.assembly import int_or_zero, stream_error, usage_tokens
from worker.providers.errors import StreamInterrupted
from worker.providers.interface import Final, Item, TextDelta, ToolCallDelta


class ResponsesAssembler:
    """Responses API events in, the final ``response`` object out."""

    def __init__(self) -> None:
        self.response: dict[str, Any] | None = None
        self.text: list[str] = []
        self.calls: dict[int, int] = {}  # output_index -> tool call number
        self.failed: dict[str, Any] | None = None

    def feed(self, event: dict[str, Any]) -> list[Item]:
        """The deltas one event carries."""
        kind = event.get("type")
        if kind == "response.output_text.delta" and isinstance(event.get("delta"), str):
            self.text.append(event["delta"])
            return [TextDelta(event["delta"])]
        if kind == "response.output_item.added":
            item = event.get("item") or {}
            if isinstance(item, dict) and item.get("type") == "function_call":
                number = self.calls.setdefault(
                    int_or_zero(event.get("output_index")), len(self.calls)
                )
                call_id = item.get("call_id") or item.get("id")
                return [ToolCallDelta(0, number, "", call_id, item.get("name"))]
        if kind == "response.function_call_arguments.delta":
            number = self._call_number(event)
            return [ToolCallDelta(0, number, str(event.get("delta") or ""))]
        if kind in ("response.created", "response.completed", "response.incomplete"):
            if isinstance(event.get("response"), dict):
                self.response = event["response"]
        if kind in ("response.failed", "error"):
            raise stream_error(self._error_of(event), "".join(self.text))
        return []

    def _call_number(self, event: dict[str, Any]) -> int:
        """Tool calls are numbered in the order their output items appear."""
        return self.calls.setdefault(int_or_zero(event.get("output_index")), len(self.calls))

    def _error_of(self, event: dict[str, Any]) -> dict[str, Any]:
        response = event.get("response")
        if isinstance(response, dict) and isinstance(response.get("error"), dict):
            return {"error": response["error"]}
        if isinstance(event.get("error"), dict):
            return {"error": event["error"]}
        return {"error": {k: v for k, v in event.items() if k in ("code", "message", "param")}}

    def final(self) -> Final:
        """The response object of the last ``response.*`` event that carried one."""
        body = self.response or {}
        if body.get("status") not in ("completed", "incomplete"):
            raise StreamInterrupted(
                "the stream ended before response.completed", partial_text="".join(self.text)
            )
        reason = "stop"
        incomplete = body.get("incomplete_details")
        if isinstance(incomplete, dict) and incomplete.get("reason") == "max_output_tokens":
            reason = "length"
        calls = [
            item
            for item in body.get("output") or ()
            if isinstance(item, dict) and item.get("type") == "function_call"
        ]
        return Final(
            body=body,
            finish_reason="tool_calls" if calls and reason == "stop" else reason,
            usage=usage_tokens(body.get("usage")),
            tool_calls=calls,
            response_id=body.get("id"),
            model=body.get("model"),
        )

    def partial_text(self) -> str:
        """The text so far."""
        return "".join(self.text)
