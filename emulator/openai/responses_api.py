"""``POST /v1/responses``: the ``response`` object and its named stream events.

Streamed: ``response.created``, ``response.in_progress``, ``response.output_item.added``,
then for a message ``response.content_part.added``, one ``response.output_text.delta`` per
piece, ``response.output_text.done``, ``response.content_part.done`` (for a tool call
``response.function_call_arguments.delta``/``.done`` instead), ``response.output_item.done``
and ``response.completed`` (``response.incomplete`` when ``max_output_tokens`` cut it),
each as ``event:`` and ``data:`` lines with a ``sequence_number``; no ``[DONE]``.
"""

from __future__ import annotations

import json
from typing import Any

from emulator.openai.answer import Answer, answer
from emulator.openai.calls import Call
from emulator.openai.sse import Event


def _usage(call: Call, ans: Answer) -> dict[str, Any]:
    over = call.overrides
    reasoning = over.reasoning_tokens or 0
    output = ans.tokens + reasoning
    return {
        "input_tokens": call.prompt_tokens,
        "input_tokens_details": {
            "cached_tokens": min(over.cached_tokens or 0, call.prompt_tokens),
            "cache_write_tokens": 0,
        },
        "output_tokens": output,
        "output_tokens_details": {"reasoning_tokens": reasoning},
        "total_tokens": call.prompt_tokens + output,
    }


def _format(request: dict[str, Any]) -> dict[str, Any]:
    given = (request.get("text") or {}).get("format") or {"type": "text"}
    if given["type"] != "json_schema":
        return {"type": given["type"]}
    kept = ("name", "schema", "strict", "description")
    return {"type": "json_schema", "schema": {}} | {k: given[k] for k in kept if k in given}


def _tools(request: dict[str, Any]) -> list[dict[str, Any]]:
    kept = ("name", "parameters", "strict", "description")
    return [
        {"type": "function", "parameters": None, "strict": None} | {k: t[k] for k in kept if k in t}
        for t in request.get("tools") or ()
    ]


def _tool_choice(request: dict[str, Any]) -> Any:
    choice = request.get("tool_choice")
    if isinstance(choice, dict):
        return {"type": "function", "name": choice.get("name")}
    return choice or "auto"


def response_object(
    call: Call, ident: str, created: int, status: str, output: list[Any], ans: Answer | None
) -> dict[str, Any]:
    """The ``response`` object in a state: in_progress, completed, incomplete or failed."""
    request = call.request
    return {
        "id": ident,
        "object": "response",
        "created_at": created,
        "status": status,
        "background": False,
        "error": None,
        "incomplete_details": {"reason": "max_output_tokens"} if status == "incomplete" else None,
        "instructions": request.get("instructions"),
        "max_output_tokens": request.get("max_output_tokens"),
        "metadata": request.get("metadata") or {},
        "model": call.model,
        "output": output,
        "parallel_tool_calls": request.get("parallel_tool_calls") is not False,
        "previous_response_id": None,
        "service_tier": "default",
        "store": request.get("store") is not False,
        "temperature": request.get("temperature", 1.0),
        "text": {"format": _format(request)},
        "tool_choice": _tool_choice(request),
        "tools": _tools(request),
        "top_p": request.get("top_p", 1.0),
        "truncation": "disabled",
        "usage": _usage(call, ans) if ans is not None else None,
        "user": None,
    }


def _item(call: Call, ident: str, ans: Answer, done: bool) -> dict[str, Any]:
    status = (
        "in_progress"
        if not done
        else "incomplete"
        if ans.finish_reason == "length"
        else "completed"
    )
    if ans.tool_call_id is not None:
        return {
            "id": "fc_" + ident.removeprefix("resp_"),
            "type": "function_call",
            "status": status,
            "call_id": ans.tool_call_id,
            "name": call.shape.tool_name,
            "arguments": ans.text if done else "",
        }
    return {
        "id": "msg_" + ident.removeprefix("resp_"),
        "type": "message",
        "status": status,
        "role": "assistant",
        "content": [_part(ans.text)] if done else [],
    }


def _part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def _final_status(ans: Answer) -> str:
    return "incomplete" if ans.finish_reason == "length" else "completed"


def whole(call: Call, ident: str, created: int, chunks: int, size: int) -> dict[str, Any]:
    """The whole ``response`` object."""
    ans = answer(call.seeds[0], call.shape, chunks, size)
    output = [_item(call, ident, ans, done=True)]
    return response_object(call, ident, created, _final_status(ans), output, ans)


def stream_events(
    call: Call, ident: str, created: int, chunks: int, size: int
) -> list[list[Event]]:
    """The stream's events, grouped by network write."""
    ans = answer(call.seeds[0], call.shape, chunks, size)
    item = _item(call, ident, ans, done=False)
    done_item = _item(call, ident, ans, done=True)
    where = {"item_id": item["id"], "output_index": 0}
    status = _final_status(ans)
    tool = ans.tool_call_id is not None
    first: list[dict[str, Any]] = [
        {
            "type": "response.created",
            "response": response_object(call, ident, created, "in_progress", [], None),
        },
        {
            "type": "response.in_progress",
            "response": response_object(call, ident, created, "in_progress", [], None),
        },
        {"type": "response.output_item.added", "output_index": 0, "item": item},
    ]
    if not tool:
        first.append(
            {"type": "response.content_part.added", **where, "content_index": 0, "part": _part("")}
        )
    deltas = [
        {"type": "response.function_call_arguments.delta", **where, "delta": piece}
        if tool
        else {
            "type": "response.output_text.delta",
            **where,
            "content_index": 0,
            "delta": piece,
            "logprobs": [],
        }
        for piece in ans.pieces
    ]
    if tool:
        last = [
            {
                "type": "response.function_call_arguments.done",
                **where,
                "name": call.shape.tool_name,
                "arguments": ans.text,
            }
        ]
    else:
        last = [
            {
                "type": "response.output_text.done",
                **where,
                "content_index": 0,
                "text": ans.text,
                "logprobs": [],
            },
            {
                "type": "response.content_part.done",
                **where,
                "content_index": 0,
                "part": _part(ans.text),
            },
        ]
    last += [
        {"type": "response.output_item.done", "output_index": 0, "item": done_item},
        {
            "type": f"response.{status}",
            "response": response_object(call, ident, created, status, [done_item], ans),
        },
    ]
    groups = [first + deltas[:1], *([d] for d in deltas[1:])]
    groups[-1] = groups[-1] + last
    return numbered(groups, 0)


def numbered(groups: list[list[dict[str, Any]]], start: int) -> list[list[Event]]:
    """Events with their ``sequence_number`` from ``start``, framed as named events."""
    number = start
    writes = []
    for group in groups:
        events: list[Event] = []
        for event in group:
            event["sequence_number"] = number
            number += 1
            data = json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode()
            events.append((event["type"].encode(), data))
        writes.append(events)
    return writes


def error_events(call: Call, ident: str, created: int, sent: int, message: str) -> list[Event]:
    """An ``error`` event then ``response.failed``, numbered after ``sent`` events."""
    failed = response_object(call, ident, created, "failed", [], None)
    failed["error"] = {"code": "server_error", "message": message}
    group: list[dict[str, Any]] = [
        {"type": "error", "code": "server_error", "message": message, "param": None},
        {"type": "response.failed", "response": failed},
    ]
    return numbered([group], sent)[0]
