"""The lines of a batch's output and error files, and their size in bytes.

One place builds them, so the file a tenant downloads and the byte counts kept as jobs end
(models/counters.py) can never disagree.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any, Protocol

from models.states import JobStatus


class LineSource(Protocol):
    """What a line is made of: a Job row, or the same fields of a job that is just ending."""

    @property
    def batch_id(self) -> str: ...
    @property
    def custom_id(self) -> str: ...
    @property
    def position(self) -> int: ...
    @property
    def status(self) -> str: ...
    @property
    def model(self) -> str: ...
    @property
    def output(self) -> str | None: ...
    @property
    def response(self) -> dict[str, Any] | None: ...
    @property
    def upstream_status(self) -> int | None: ...
    @property
    def error_code(self) -> str | None: ...
    @property
    def error_message(self) -> str | None: ...
    @property
    def chars_in(self) -> int: ...
    @property
    def chars_out(self) -> int: ...
    @property
    def finished_at(self) -> datetime | None: ...


@dataclass(frozen=True, slots=True)
class Ended:
    """A job as it ends: its fields that its line is made of."""

    batch_id: str
    custom_id: str
    position: int
    status: str
    model: str
    output: str | None
    response: dict[str, Any] | None
    upstream_status: int | None
    error_code: str | None
    error_message: str | None
    chars_in: int
    chars_out: int
    finished_at: datetime | None


LINE_FIELDS = tuple(f.name for f in fields(Ended))


# Built once: json.dumps with any option builds a new encoder on every call.
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def encode(obj: dict[str, Any]) -> bytes:
    """One compact JSON document and its newline, UTF-8: a line of a JSONL file."""
    return (_ENCODER.encode(obj) + "\n").encode()


def _suffix(job: LineSource) -> str:
    """Unique per request: the batch's hex and the request's position in it."""
    return f"{job.batch_id.removeprefix('batch_')}_{job.position}"


def output_line(job: LineSource) -> dict[str, Any]:
    """The output-file line of a succeeded request: the answer its upstream produced (a
    ``chat.completion``, an embedding list, a ``response``…), or for an Aivvm answer a
    ``chat.completion`` made of its text."""
    body = job.response if isinstance(job.response, dict) else _aivvm_completion(job)
    return {
        "id": f"batch_req_{_suffix(job)}",
        "custom_id": job.custom_id,
        "response": {"status_code": 200, "request_id": f"req_{_suffix(job)}", "body": body},
        "error": None,
    }


def _aivvm_completion(job: LineSource) -> dict[str, Any]:
    content = job.output or ""
    finished = job.finished_at
    return {
        "id": f"chatcmpl-{_suffix(job)}",
        "object": "chat.completion",
        "created": None if finished is None else int(finished.timestamp()),
        "model": job.model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content, "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        # The Aivvm protocol reports no tokens: these count characters.
        "usage": {
            "prompt_tokens": job.chars_in,
            "completion_tokens": job.chars_out,
            "total_tokens": job.chars_in + job.chars_out,
        },
    }


def error_line(job: LineSource) -> dict[str, Any]:
    """The error-file line of a request that did not succeed: the upstream's HTTP error
    (status and body, as OpenAI writes them) when it answered one, else our error."""
    status = job.upstream_status
    if status is not None and status >= 400 and isinstance(job.response, dict):
        return {
            "id": f"batch_req_{_suffix(job)}",
            "custom_id": job.custom_id,
            "response": {
                "status_code": status,
                "request_id": f"req_{_suffix(job)}",
                "body": job.response,
            },
            "error": None,
        }
    return {
        "id": f"batch_req_{_suffix(job)}",
        "custom_id": job.custom_id,
        "response": None,
        "error": {"code": job.error_code or str(job.status), "message": job.error_message or ""},
    }


def line_size(job: LineSource) -> int:
    """Bytes of the job's line: in the output file if it succeeded, else in the error file."""
    make = output_line if job.status == JobStatus.SUCCEEDED else error_line
    return len(encode(make(job)))
