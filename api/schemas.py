"""Request bodies the API accepts (answers are shaped by api/views.py)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

MAX_METADATA_PAIRS = 16
MAX_METADATA_KEY = 64
MAX_METADATA_VALUE = 512


class CreateBatch(BaseModel):
    """A new batch: inline ``requests`` (native) or an uploaded ``input_file_id`` (OpenAI)."""

    # OpenAI's clients send fields this service has no use for; they are ignored.
    model_config = ConfigDict(extra="ignore")

    requests: list[Any] | None = Field(
        default=None, description="Inline requests: {custom_id, messages, model?, ...}."
    )
    input_file_id: str | None = Field(default=None, description="An uploaded batch input file.")
    endpoint: str = Field(default="/v1/chat/completions", description="Only chat completions.")
    completion_window: str | None = Field(
        default=None, description="How long the batch may run: '30m', '24h', '7d'."
    )
    metadata: dict[str, str] | None = Field(default=None, description="Up to 16 string pairs.")
    model: str | None = Field(default=None, description="Default model of the requests.")
    temperature: float | None = Field(
        default=None, ge=0, le=2, description="Default temperature of the requests."
    )
    system_message: str | None = Field(
        default=None, description="Default system message of the requests."
    )

    @field_validator("endpoint")
    @classmethod
    def _chat_only(cls, value: str) -> str:
        if value != "/v1/chat/completions":
            raise ValueError("only /v1/chat/completions is supported")
        return value

    @field_validator("metadata")
    @classmethod
    def _metadata_limits(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        if value is None:
            return None
        if len(value) > MAX_METADATA_PAIRS:
            raise ValueError(f"at most {MAX_METADATA_PAIRS} pairs")
        for key, item in value.items():
            if len(key) > MAX_METADATA_KEY or len(item) > MAX_METADATA_VALUE:
                raise ValueError(
                    f"keys are at most {MAX_METADATA_KEY} characters,"
                    f" values at most {MAX_METADATA_VALUE}"
                )
        return value
