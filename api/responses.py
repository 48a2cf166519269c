"""What the API answers, as typed models: the contract `/openapi.json` publishes.

The presenters (api/views.py) build these; the routes declare them, with the error model
for each status they can answer (api/openapi.py).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from models.states import BatchStatus, JobStatus


class Answer(BaseModel):
    """Base of every answer: no field may be missing or unknown."""

    model_config = ConfigDict(extra="forbid")


class InputTokensDetails(Answer):
    """Details of the input tokens."""

    cached_tokens: int


class OutputTokensDetails(Answer):
    """Details of the output tokens."""

    reasoning_tokens: int


class Usage(Answer):
    """OpenAI's usage shape (tokens as the upstream reported them), plus characters counted here."""

    input_tokens: int
    input_tokens_details: InputTokensDetails
    output_tokens: int
    output_tokens_details: OutputTokensDetails
    total_tokens: int
    input_characters: int
    output_characters: int


class RequestCounts(Answer):
    """OpenAI's request counts: `failed` holds every finished request that did not succeed."""

    total: int
    completed: int
    failed: int


class Counts(Answer):
    """How many requests of the batch are in each state."""

    queued: int
    running: int
    succeeded: int
    failed: int
    cancelled: int
    expired: int


class BatchObject(Answer):
    """A batch: OpenAI's batch object, plus `counts` by state and `usage`."""

    id: str = Field(examples=["batch_5f0c2d0a4b7e4f3b9a1c2d3e4f5a6b7c"])
    object: Literal["batch"] = "batch"
    endpoint: str
    errors: None = None
    input_file_id: str | None
    completion_window: str
    status: BatchStatus
    output_file_id: str | None
    error_file_id: str | None
    created_at: int
    in_progress_at: int | None
    expires_at: int | None
    finalizing_at: int | None
    completed_at: int | None
    failed_at: int | None
    expired_at: int | None
    cancelling_at: int | None
    cancelled_at: int | None
    request_counts: RequestCounts
    metadata: dict[str, str] | None
    counts: Counts
    usage: Usage


class BatchList(Answer):
    """A page of batches, newest first (OpenAI's cursor page)."""

    object: Literal["list"] = "list"
    data: list[BatchObject]
    first_id: str | None
    last_id: str | None
    has_more: bool


class JobError(Answer):
    """Why a request did not succeed."""

    code: str
    message: str


class Timings(Answer):
    """How long the last attempt took, in milliseconds."""

    first_chunk_ms: float | None
    duration_ms: float | None


class AttemptEntry(BaseModel):
    """One attempt: the upstream that served it and the state it left the job in."""

    model_config = ConfigDict(extra="allow")

    attempt: int
    upstream: str | None
    status: str
    code: str | None = None
    status_code: int | None = None
    finish_reason: str | None = None


class JobObject(Answer):
    """One request of a batch: where it stands, its output or error, usage and timings."""

    custom_id: str
    position: int
    status: JobStatus
    model: str
    output: str | None
    error: JobError | None
    upstream_status: int | None
    upstream: str | None = Field(description="The upstream of the latest attempt.")
    response: dict[str, Any] | None = Field(
        description="What that upstream answered, in its own shape (null for Aivvm text)."
    )
    attempts: int
    attempt_log: list[AttemptEntry] = Field(description="Each attempt and its upstream.")
    usage: Usage
    timings: Timings
    created_at: int
    started_at: int | None
    finished_at: int | None


class JobDetail(JobObject):
    """One request with what it asked: its messages (every shape OpenAI accepts), the body
    fields passed through, temperature and system message."""

    messages: list[dict[str, Any]]
    params: dict[str, Any]
    temperature: float | None
    system_message: str | None


class FileObject(Answer):
    """OpenAI's file object: an upload, or an ended batch's output or error file."""

    id: str
    object: Literal["file"] = "file"
    bytes: int
    created_at: int
    filename: str
    purpose: Literal["batch", "batch_output"]
    status: Literal["processed"] = "processed"
    status_details: None = None


class FileList(Answer):
    """A page of the caller's uploaded files, newest first."""

    object: Literal["list"] = "list"
    data: list[FileObject]
    first_id: str | None
    last_id: str | None
    has_more: bool


class FileDeleted(Answer):
    """A deleted file."""

    id: str
    object: Literal["file"] = "file"
    deleted: bool


class ModelObject(Answer):
    """A model this service routes to an upstream (OpenAI's model object)."""

    id: str
    object: Literal["model"] = "model"
    created: int = Field(description="When the routing table was loaded (unix seconds).")
    owned_by: str = Field(description="The upstream that serves it.")


class ModelList(Answer):
    """The models served by name; those matched only by an upstream's glob pattern are
    served but not listed."""

    object: Literal["list"] = "list"
    data: list[ModelObject]


class LineError(Answer):
    """One bad line (of a file) or request (of an inline batch)."""

    line: int
    message: str


class ErrorDetail(Answer):
    """OpenAI's error object; `lines` and `line_count` only when lines of a batch were bad."""

    message: str
    type: str
    param: str | None
    code: str
    lines: list[LineError] | None = Field(
        default=None, description="The bad lines, the first 100 of them."
    )
    line_count: int | None = Field(default=None, description="How many lines were bad in all.")


class ErrorResponse(Answer):
    """Every error answer, whatever the route."""

    error: ErrorDetail


class Health(Answer):
    """The process is alive."""

    status: Literal["ok"]


class ReadyChecks(Answer):
    """What each dependency answered: `ok`, or `down: <why>`."""

    sql: str
    redis: str


class Ready(Answer):
    """Whether SQL and Redis answer."""

    status: Literal["ready", "not ready"]
    checks: ReadyChecks
