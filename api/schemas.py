"""The body ``POST /v1/batches`` takes, as published in the OpenAPI document.

The route reads the body itself, streaming (api/inline_input.py), and holds every value to
the request rules of models/requests.py; these models describe those rules for callers and
for schema-driven clients. What JSON Schema cannot say is in the descriptions: each
``custom_id`` is used once per batch, and a request's messages and system message together
are at most ``AIVBATCH_MAX_REQUEST_BYTES``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from models.batches import WINDOW_PATTERN
from models.requests import MAX_CUSTOM_ID, MAX_MODEL

# The rules of models/requests.py: some character that is not white space, no control
# characters, and no "/events" ending.
CUSTOM_ID_CHARACTERS = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"
CUSTOM_ID_PATTERN = "^(?!.*/events$)" + CUSTOM_ID_CHARACTERS[1:]
# Some character that is not white space, and no NUL (SQL text columns cannot hold one).
# An id: no "/", no control characters (PostgreSQL cannot even compare a NUL).
ID_PATTERN = r"^[^/\x00-\x1f\x7f-\x9f]+$"
_MODEL_PATTERN = r"^[^\x00]*[^\s\x00][^\x00]*$"
_NO_NUL = r"^[^\x00]*$"
_POST = r"^[Pp][Oo][Ss][Tt]$"

CustomId = Annotated[
    str,
    Field(
        min_length=1,
        max_length=MAX_CUSTOM_ID,
        pattern=CUSTOM_ID_PATTERN,
        description="Unique within the batch; must not end in '/events'.",
    ),
]
ModelName = Annotated[str, Field(min_length=1, max_length=MAX_MODEL, pattern=_MODEL_PATTERN)]
Temperature = Annotated[float, Field(ge=0, le=2)]
Endpoint = Literal["/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/responses"]


class ContentPart(BaseModel):
    """A part of a message's content (OpenAI's list form): text, an image by URL, audio..."""

    model_config = ConfigDict(extra="allow")

    type: str


class ChatMessage(BaseModel):
    """One chat message, in any shape OpenAI accepts (tool calls and results included); an
    upstream of kind aivvm takes text only."""

    model_config = ConfigDict(extra="allow")

    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[ContentPart] | None = None


class NativeRequest(BaseModel):
    """A native request: messages, and optionally its own model, temperature, system message."""

    # A "body" field would make it an OpenAI batch line.
    model_config = ConfigDict(
        extra="allow", regex_engine="python-re", json_schema_extra={"not": {"required": ["body"]}}
    )

    custom_id: CustomId
    messages: list[ChatMessage] = Field(min_length=1)
    model: ModelName | None = None
    temperature: Temperature | None = None
    system_message: Annotated[str, Field(pattern=_NO_NUL)] | None = None


class ChatBody(BaseModel):
    """The body of an OpenAI batch line: every other field passes through to the upstream
    (``messages`` for chat; ``input`` for embeddings and responses; ``prompt`` for
    completions)."""

    model_config = ConfigDict(extra="allow")

    # Required as chat needs them; the other endpoints' bodies are described in words above.
    messages: list[ChatMessage] = Field(min_length=1)
    model: ModelName | None = None
    temperature: Temperature | None = None
    system_message: Annotated[str, Field(pattern=_NO_NUL)] | None = None
    stream: Any = Field(
        default=None,
        description="Streaming is not for batches: anything but false or empty is refused.",
        json_schema_extra={"enum": [False, None, 0, "", [], {}]},
    )


class OpenAIRequest(BaseModel):
    """An OpenAI batch line."""

    model_config = ConfigDict(extra="allow", regex_engine="python-re")

    custom_id: CustomId
    method: str = Field(default="POST", pattern=_POST, description="POST (in any case).")
    url: Endpoint = "/v1/chat/completions"
    body: ChatBody


class CreateBatch(BaseModel):
    """A new batch: inline ``requests`` (native) or an uploaded ``input_file_id`` (OpenAI).

    Give exactly one of the two. Other fields are accepted and not used (OpenAI's clients
    send some).
    """

    model_config = ConfigDict(
        extra="allow",
        regex_engine="python-re",
        json_schema_extra={
            "oneOf": [
                {
                    "required": ["requests"],
                    "properties": {
                        "requests": {"type": "array"},
                        "input_file_id": {"type": "null"},
                    },
                },
                {
                    "required": ["input_file_id"],
                    "properties": {
                        "input_file_id": {"type": "string"},
                        "requests": {"type": "null"},
                    },
                },
            ]
        },
    )

    requests: list[NativeRequest | OpenAIRequest] | None = Field(
        default=None,
        min_length=1,
        description="Inline requests; each custom_id used once. At most"
        " AIVBATCH_MAX_REQUESTS_PER_BATCH (50,000 by default).",
    )
    input_file_id: Annotated[str, Field(pattern=ID_PATTERN)] | None = Field(
        default=None, description="An uploaded batch input file."
    )
    endpoint: Endpoint | None = Field(
        default=None,
        description="What every request calls (default chat completions); all but chat need"
        " an upstream of kind openai.",
    )
    completion_window: str | None = Field(
        default=None,
        pattern=WINDOW_PATTERN,
        description="How long the batch may run: '30m', '24h', '7d' (at most 30 days).",
    )
    metadata: (
        dict[Annotated[str, Field(max_length=64)], Annotated[str, Field(max_length=512)]] | None
    ) = Field(
        default=None, max_length=16, description="Up to 16 string pairs (keys up to 64 characters)."
    )
    model: ModelName | None = Field(default=None, description="Default model of the requests.")
    temperature: Temperature | None = Field(
        default=None, description="Default temperature of the requests."
    )
    system_message: Annotated[str, Field(pattern=_NO_NUL)] | None = Field(
        default=None, description="Default system message of the requests, stored once."
    )
