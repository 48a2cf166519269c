"""The presenters: batches, jobs and files as the answer models of api/responses.py."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from api.responses import (
    BatchList,
    BatchObject,
    FileList,
    FileObject,
    JobDetail,
    JobError,
    JobObject,
    Timings,
)
from models import counters, lines
from models.states import (
    BATCH_TIMESTAMPS,
    ENDED_BATCH_STATES,
    UNSUCCESSFUL_JOB_STATES,
    BatchStatus,
    JobStatus,
)
from models.tables import Batch, Job, StoredFile
from models.usage import Usage

OUTPUT_FILE_PREFIX = "file-output-"
ERROR_FILE_PREFIX = "file-errors-"
INPUT_FILE_PREFIX = "file-input-"


def unix(value: datetime | None) -> int | None:
    """A timestamp as unix seconds."""
    return None if value is None else int(value.timestamp())


def input_file_id(batch: Batch) -> str:
    """The batch's input file: the one it was made from, or its inline requests'."""
    return batch.input_file_id or INPUT_FILE_PREFIX + batch.id.removeprefix("batch_")


def output_file_id(batch_id: str) -> str:
    """The id of a batch's output file (its succeeded requests)."""
    return OUTPUT_FILE_PREFIX + batch_id.removeprefix("batch_")


def error_file_id(batch_id: str) -> str:
    """The id of a batch's error file (its requests that did not succeed)."""
    return ERROR_FILE_PREFIX + batch_id.removeprefix("batch_")


def batch_object(batch: Batch, counts: dict[str, int], usage: Usage) -> BatchObject:
    """OpenAI's batch object, plus counts by state and usage (tokens and characters)."""
    succeeded = counts.get(JobStatus.SUCCEEDED, 0)
    unsuccessful = sum(counts.get(s, 0) for s in UNSUCCESSFUL_JOB_STATES)
    ended = batch.status in ENDED_BATCH_STATES
    fields: dict[str, Any] = {name: unix(getattr(batch, name)) for name in BATCH_TIMESTAMPS}
    return BatchObject(
        id=batch.id,
        endpoint=batch.endpoint,
        input_file_id=input_file_id(batch),
        completion_window=batch.completion_window,
        status=BatchStatus(batch.status),
        output_file_id=output_file_id(batch.id) if ended and succeeded else None,
        error_file_id=error_file_id(batch.id) if ended and unsuccessful else None,
        request_counts={"total": batch.total, "completed": succeeded, "failed": unsuccessful},
        metadata=batch.metadata_,
        counts={str(state): counts.get(state, 0) for state in JobStatus},
        usage=usage.openai(),
        **fields,
    )


def present(session: Session, rows: Sequence[Batch]) -> list[BatchObject]:
    """The batch objects of ``rows``, with their counts by state and usage."""
    kept = counters.read(session, [b.id for b in rows])
    return [batch_object(b, *kept[b.id]) for b in rows]


def batch_list(data: list[BatchObject], *, has_more: bool) -> BatchList:
    """OpenAI's cursor page of batches."""
    return BatchList(
        data=data,
        first_id=data[0].id if data else None,
        last_id=data[-1].id if data else None,
        has_more=has_more,
    )


def _job_fields(job: Job) -> dict[str, Any]:
    succeeded = job.status == JobStatus.SUCCEEDED
    error = None
    if not succeeded and job.error_code is not None:
        error = JobError(code=job.error_code, message=job.error_message or "")
    return {
        "custom_id": job.custom_id,
        "position": job.position,
        "status": JobStatus(job.status),
        "model": job.model,
        "output": job.output,
        "error": error,
        "upstream_status": job.upstream_status,
        "upstream": job.upstream,
        "response": job.response,
        "attempts": job.attempt,
        "attempt_log": attempt_log(job),
        "usage": Usage.of(job).openai(),
        "timings": Timings(first_chunk_ms=job.first_chunk_ms, duration_ms=job.duration_ms),
        "created_at": unix(job.created_at),
        "started_at": unix(job.started_at),
        "finished_at": unix(job.finished_at),
    }


def job_object(job: Job) -> JobObject:
    """One job: where it stands, its output or error, usage and timings."""
    return JobObject(**_job_fields(job))


def job_detail(job: Job, batch: Batch) -> JobDetail:
    """One job with its request; a job without a system message shows its batch's."""
    return JobDetail(
        **_job_fields(job),
        messages=job.messages,
        params=job.params or {},
        temperature=job.temperature,
        system_message=job.system_message
        if job.system_message is not None
        else batch.system_message,
    )


def attempt_log(job: Job) -> list[dict[str, Any]]:
    """Every attempt with the upstream that served it; an attempt whose worker died before it
    could record one is ``lost``, on the upstream the job was bound to then."""
    recorded = {e["attempt"]: e for e in job.attempt_log or () if isinstance(e, dict)}
    log: list[dict[str, Any]] = []
    # Walking back: a lost attempt ran where the next recorded one did (nothing moved it).
    upstream = job.upstream
    for n in range(job.attempt, 0, -1):
        entry = recorded.get(n)
        if entry is None:
            still_running = n == job.attempt and job.status == JobStatus.RUNNING
            status = JobStatus.RUNNING if still_running else "lost"
            entry = {"attempt": n, "upstream": upstream, "status": status}
        else:
            upstream = entry.get("upstream", upstream)
        log.append(entry)
    return log[::-1]


def file_object(
    file_id: str, *, size: int, created_at: datetime, filename: str, purpose: str
) -> FileObject:
    """OpenAI's file object."""
    return FileObject(
        id=file_id,
        bytes=size,
        created_at=unix(created_at) or 0,
        filename=filename,
        purpose=purpose,
    )


def stored_file_object(row: StoredFile) -> FileObject:
    """The file object of an uploaded file."""
    return file_object(
        row.id, size=row.size, created_at=row.created_at, filename=row.filename, purpose=row.purpose
    )


def file_list(data: list[FileObject], *, has_more: bool) -> FileList:
    """OpenAI's cursor page of files."""
    return FileList(
        data=data,
        first_id=data[0].id if data else None,
        last_id=data[-1].id if data else None,
        has_more=has_more,
    )


def jsonl(objects: Iterable[dict[str, Any]]) -> Iterator[bytes]:
    """One compact JSON document per line, UTF-8."""
    for obj in objects:
        yield lines.encode(obj)


def job_lines(jobs: Iterable[Job]) -> Iterator[bytes]:
    """Job objects as JSONL, one per line."""
    for job in jobs:
        yield job_object(job).model_dump_json().encode() + b"\n"
