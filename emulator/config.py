"""The emulator's settings: flags, else ``AIVBATCH_EMULATOR_*`` variables, else defaults."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

# Every fault the emulator can play; `--faults` and the marker's `fault=` pick among them.
FAULT_KINDS = ("429", "500", "503", "400", "401", "403", "html", "reset", "stall", "error_event")
DEFAULT_OPENAI_MODELS = (
    "gpt-4o-mini",
    "llama-3.1-8b-instruct",
    "qwen2.5-7b",
    "text-embedding-3-small",
)


def _comma_list(value: object) -> object:
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    return value


class EmulatorSettings(BaseSettings):
    """How the emulator listens, paces its answers and misbehaves."""

    model_config = SettingsConfigDict(env_prefix="AIVBATCH_EMULATOR_", extra="ignore")

    host: str = Field(default="127.0.0.1", description="Address to listen on.")
    port: int = Field(default=8765, ge=0, le=65535, description="Port to listen on (0: any).")
    chunks: int = Field(default=20, ge=1, le=10_000, description="Body chunks per answer.")
    chunk_size: int = Field(
        default=24, ge=1, le=65_536, description="Bytes per chunk; the answer is ~chunks×this."
    )
    ttfb_ms: float = Field(default=50.0, ge=0, description="Milliseconds before the first chunk.")
    delay_ms: float = Field(default=50.0, ge=0, description="Milliseconds between chunks.")
    fault_rate: float = Field(
        default=0.0, ge=0, le=1, description="Share of calls faulted (deterministic by request)."
    )
    # NoDecode: the variable is a comma list, not the JSON pydantic-settings expects by default.
    faults: Annotated[tuple[str, ...], NoDecode] = Field(
        default=("429", "500", "reset", "stall"),
        description="Fault kinds drawn by --fault-rate, comma-separated.",
    )
    fault_times: int = Field(
        default=2, ge=0, description="At most this many rate faults per request fingerprint."
    )
    retry_after: int = Field(default=1, ge=0, description="Retry-After seconds of a 429.")
    stall_seconds: float = Field(
        default=300.0, ge=0, description="Silence of a stall before the answer resumes."
    )
    openai_models: Annotated[tuple[str, ...], NoDecode] = Field(
        default=DEFAULT_OPENAI_MODELS,
        description="Models served under /v1 (the OpenAI protocol), comma-separated.",
    )
    api_key: str | None = Field(
        default=None,
        min_length=1,
        description="Key /v1 calls must send as 'Authorization: Bearer KEY' (none: no auth).",
    )

    @field_validator("faults", "openai_models", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        return _comma_list(value)

    @field_validator("openai_models")
    @classmethod
    def _some_models(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("name at least one model")
        return value

    @field_validator("faults")
    @classmethod
    def _known_faults(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [kind for kind in value if kind not in FAULT_KINDS]
        if unknown:
            raise ValueError(f"unknown fault kinds {unknown}; choose from {', '.join(FAULT_KINDS)}")
        if not value:
            raise ValueError("name at least one fault kind")
        return value
