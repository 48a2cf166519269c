"""``POST /v1/responses``: the request (``input``, ``instructions``, ``text.format``, tools).

``input`` is a string (one user message) or a list of items: messages (``role`` with
string content or ``input_text``/``output_text``/``refusal``/``input_image``/``input_file``
/``input_audio`` parts), ``function_call``, ``function_call_output``, ``reasoning`` and
``item_reference`` items. Prompt tokens are counted as for chat (``emulator.openai
.messages``), ``instructions`` being one more message.
"""

from __future__ import annotations

from typing import Any

from emulator.faults import strip_markers
from emulator.openai import calls, fields
from emulator.openai.answer import Shape
from emulator.openai.calls import Call
from emulator.openai.errors import bad_type, bad_value, missing
from emulator.openai.messages import MESSAGE_TOKENS, Prompt
from emulator.text import is_cyrillic

_ROLES = ("user", "assistant", "system", "developer")
_TEXT_PARTS = {"input_text": "text", "output_text": "text", "refusal": "refusal"}
_OTHER_PARTS = ("input_image", "input_file", "input_audio")
_QUIET_ITEMS = ("reasoning", "item_reference")


def _message(prompt: Prompt, param: str, item: dict[str, Any]) -> None:
    role = item.get("role")
    if role not in _ROLES:
        supported = ", ".join(f"'{r}'" for r in _ROLES)
        raise bad_value(f"{param}.role", f"got {role!r}; supported values are: {supported}.")
    prompt.tokens += MESSAGE_TOKENS
    prompt.material.append(role)
    start = len(prompt.texts)
    value = item.get("content")
    if isinstance(value, str):
        prompt.add_text(value)
    elif isinstance(value, list):
        for i, part in enumerate(value):
            where = f"{param}.content[{i}]"
            if not isinstance(part, dict):
                raise bad_type(where, "object", part)
            kind = part.get("type")
            if kind in _TEXT_PARTS:
                text = fields.string(part, _TEXT_PARTS[kind], True, f"{where}.{_TEXT_PARTS[kind]}")
                prompt.add_text(str(text))
            elif kind in _OTHER_PARTS:
                prompt.add_other(part)
            else:
                known = ", ".join(f"'{k}'" for k in (*_TEXT_PARTS, *_OTHER_PARTS))
                raise bad_value(f"{where}.type", f"got {kind!r}; supported values are: {known}.")
    else:
        raise bad_type(f"{param}.content", "string", value)
    if role == "user":
        prompt.last_user = " ".join(prompt.texts[start:])


def _item(prompt: Prompt, param: str, item: Any) -> None:
    if not isinstance(item, dict):
        raise bad_type(param, "object", item)
    kind = item.get("type", "message")
    if kind == "message":
        _message(prompt, param, item)
    elif kind == "function_call":
        prompt.tokens += MESSAGE_TOKENS
        fields.string(item, "call_id", True, f"{param}.call_id")
        for name in ("name", "arguments"):
            prompt.add_text(str(fields.string(item, name, True, f"{param}.{name}")))
    elif kind == "function_call_output":
        prompt.tokens += MESSAGE_TOKENS
        fields.string(item, "call_id", True, f"{param}.call_id")
        output = item.get("output")
        if output is None:
            raise missing(f"{param}.output")
        prompt.add_text(output if isinstance(output, str) else calls.canonical(output).decode())
    elif kind not in _QUIET_ITEMS:
        known = ", ".join(f"'{k}'" for k in ("message", "function_call", "function_call_output"))
        raise bad_value(f"{param}.type", f"got {kind!r}; supported values include {known}.")


def _prompt(data: dict[str, Any]) -> Prompt:
    prompt = Prompt()
    instructions = fields.string(data, "instructions")
    if instructions is not None:
        prompt.tokens += MESSAGE_TOKENS
        prompt.add_text(instructions)
    value = data.get("input")
    if value is None:
        raise missing("input")
    if isinstance(value, str):
        prompt.tokens += MESSAGE_TOKENS
        prompt.add_text(value)
        prompt.last_user = value
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _item(prompt, f"input[{i}]", item)
    else:
        raise bad_type("input", "string", value)
    return prompt


def parse_response(data: Any, served: tuple[str, ...]) -> Call:
    """Validate a responses body; OpenAIError naming the field."""
    data = fields.body_object(data)
    model = fields.model(data)
    prompt = _prompt(data)
    max_tokens = fields.integer(data, "max_output_tokens", 16, 1 << 30)
    text = fields.obj(data, "text") or {}
    output = calls.output_format(text.get("format"), "text.format", nested=False)
    tools = calls.function_tools(data.get("tools"), nested=False)
    overrides = calls.markers(prompt.texts)
    tool = calls.tool_called(data.get("tool_choice"), tools, overrides, nested=False)
    fields.obj(data, "metadata")
    stream = fields.boolean(data, "stream")
    sampling = calls.sampling(data)
    fields.served(model, served)
    shape = Shape(
        cyrillic=is_cyrillic(strip_markers(prompt.last_user)),
        max_tokens=max_tokens,
        json_schema=output if tool is None else None,
        tool_name=tool,
        tool_parameters=tools[tool] if tool else "{}",
    )
    material = ["response", model, prompt.material, sampling, shape.json_schema, tool]
    return Call(
        kind="response",
        model=model,
        stream=stream,
        include_usage=True,
        seeds=calls.seeds(material, 1),
        shape=shape,
        prompt_tokens=prompt.tokens,
        overrides=overrides,
        fingerprint=calls.fingerprint("response", data),
        request=data,
    )
