"""The JSON shapes the API answers with: batches, jobs and files (see docs/api.md)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from models import batches
from models.states import (
    BATCH_TIMESTAMPS,
    ENDED_BATCH_STATES,
    UNSUCCESSFUL_JOB_STATES,
    JobStatus,
)
from models.tables import Batch, Job, StoredFile
from models.usage import Usage

OUTPUT_FILE_PREFIX = "file-output-"
ERROR_FILE_PREFIX = "file-errors-"


def unix(value: datetime | None) -> int | None:
    """A timestamp as unix seconds."""
    return None if value is None else int(value.timestamp())


def output_file_id(batch_id: str) -> str:
    """The id of a batch's output file (its succeeded requests)."""
    return OUTPUT_FILE_PREFIX + batch_id.removeprefix("batch_")


def error_file_id(batch_id: str) -> str:
    """The id of a batch's error file (its requests that did not succeed)."""
    return ERROR_FILE_PREFIX + batch_id.removeprefix("batch_")


def batch_object(batch: Batch, counts: dict[str, int], usage: Usage) -> dict[str, Any]:
    """OpenAI's batch object, plus counts by state and usage (tokens and characters)."""
    succeeded = counts.get(JobStatus.SUCCEEDED, 0)
    unsuccessful = sum(counts.get(s, 0) for s in UNSUCCESSFUL_JOB_STATES)
    ended = batch.status in ENDED_BATCH_STATES
    obj: dict[str, Any] = {
        "id": batch.id,
        "object": "batch",
        "endpoint": batch.endpoint,
        "errors": None,
        "input_file_id": batch.input_file_id,
        "completion_window": batch.completion_window,
        "status": batch.status,
        "output_file_id": output_file_id(batch.id) if ended and succeeded else None,
        "error_file_id": error_file_id(batch.id) if ended and unsuccessful else None,
    }
    obj.update({name: unix(getattr(batch, name)) for name in BATCH_TIMESTAMPS})
    obj["request_counts"] = {
        "total": batch.total,
        "completed": succeeded,
        "failed": unsuccessful,
    }
    obj["metadata"] = batch.metadata_
    obj["counts"] = {str(state): counts.get(state, 0) for state in JobStatus}
    obj["usage"] = usage.openai()
    return obj


def present(session: Session, rows: Sequence[Batch]) -> list[dict[str, Any]]:
    """The batch objects of ``rows``, with their counts by state and usage."""
    counts = batches.counts_by_state(session, [b.id for b in rows])
    usage = batches.usage_by_batch(session, rows)
    return [batch_object(b, counts[b.id], usage[b.id]) for b in rows]


def job_object(job: Job, *, with_request: bool = False) -> dict[str, Any]:
    """One job: where it stands, its output or error, usage and timings."""
    succeeded = job.status == JobStatus.SUCCEEDED
    obj: dict[str, Any] = {
        "custom_id": job.custom_id,
        "position": job.position,
        "status": job.status,
        "model": job.model,
        "output": job.output,
        "error": None
        if succeeded or job.error_code is None
        else {"code": job.error_code, "message": job.error_message or ""},
        "upstream_status": job.upstream_status,
        "attempts": job.attempt,
        "usage": Usage.of(job).openai(),
        "timings": {"first_chunk_ms": job.first_chunk_ms, "duration_ms": job.duration_ms},
        "created_at": unix(job.created_at),
        "started_at": unix(job.started_at),
        "finished_at": unix(job.finished_at),
    }
    if with_request:
        obj["messages"] = job.messages
        obj["temperature"] = job.temperature
        obj["system_message"] = job.system_message
    return obj


def file_object(
    file_id: str, *, size: int, created_at: datetime, filename: str, purpose: str
) -> dict[str, Any]:
    """OpenAI's file object."""
    return {
        "id": file_id,
        "object": "file",
        "bytes": size,
        "created_at": unix(created_at),
        "filename": filename,
        "purpose": purpose,
        "status": "processed",
        "status_details": None,
    }


def stored_file_object(row: StoredFile) -> dict[str, Any]:
    """The file object of an uploaded file."""
    return file_object(
        row.id, size=row.size, created_at=row.created_at, filename=row.filename, purpose=row.purpose
    )


def list_object(data: list[dict[str, Any]], *, has_more: bool) -> dict[str, Any]:
    """OpenAI's cursor page."""
    return {
        "object": "list",
        "data": data,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
        "has_more": has_more,
    }


def jsonl(objects: Iterable[dict[str, Any]]) -> Iterator[bytes]:
    """One compact JSON document per line, UTF-8."""
    for obj in objects:
        yield (json.dumps(obj, ensure_ascii=False, separators=(",", ":")) + "\n").encode()
