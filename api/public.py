"""Typed answers of the job listing, error summary and input check routes (docs/api.md)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from api.responses import Answer, JobObject, LineError


class JobList(Answer):
    """A page of a batch's requests in input order; ``last_id`` is the next page's ``after``."""

    object: Literal["list"] = "list"
    data: list[JobObject]
    first_id: str | None
    last_id: str | None
    has_more: bool


class ErrorGroup(Answer):
    """The requests that ended with one error code: how many, a message, the first few."""

    code: str
    count: int
    message: str = Field(description="The message of the first such request.")
    custom_ids: list[str] = Field(description="The first few, in input order.")


class ErrorGroupList(Answer):
    """A batch's unsuccessful requests grouped by error code, the largest group first."""

    object: Literal["list"] = "list"
    data: list[ErrorGroup]
    total: int = Field(description="Unsuccessful requests in all.")


class InputCheck(Answer):
    """What a batch input file would make: valid or not, and every bad line."""

    object: Literal["batch.input_check"] = "batch.input_check"
    valid: bool
    requests: int = Field(description="Requests (non-blank lines) the file holds.")
    models: dict[str, int] = Field(
        description="Requests per model, the default applied (when the file is valid)."
    )
    completion_window: str
    errors: list[LineError] = Field(description="Every bad line (the first 100).")
    error_count: int
    message: str | None = Field(default=None, description="The problems in one sentence.")
