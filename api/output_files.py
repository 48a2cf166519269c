"""A batch's OpenAI output and error files, built from SQL as they are read.

The output file holds one line per succeeded request, the error file one per request that
did not succeed, both in input order, in OpenAI's batch output format. Nothing is stored:
the ids name the batch (``file-output-<batch>``, ``file-errors-<batch>``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from api.responses import FileObject
from api.services import Services
from api.views import ERROR_FILE_PREFIX, OUTPUT_FILE_PREFIX, file_object, jsonl, unix
from models import batches, results
from models.errors import NotFound
from models.states import ENDED_BATCH_STATES, UNSUCCESSFUL_JOB_STATES, JobStatus
from models.tables import Batch, Job


@dataclass(frozen=True, slots=True)
class BatchFile:
    """An output or error file of one ended batch."""

    file_id: str
    batch: Batch
    errors: bool

    def lines(self, services: Services) -> Iterator[bytes]:
        """The file's content, line by line."""
        states = UNSUCCESSFUL_JOB_STATES if self.errors else (JobStatus.SUCCEEDED,)
        rows = results.finished_jobs(services.db.read, self.batch.id, states=states)
        make = error_line if self.errors else output_line
        return jsonl(make(job) for job in rows)

    def describe(self, services: Services) -> FileObject:
        """The file object; its size is counted by reading the content through once."""
        size = sum(len(line) for line in self.lines(services))
        kind = "error" if self.errors else "output"
        ended = self.batch.finalizing_at or self.batch.created_at
        return file_object(
            self.file_id,
            size=size,
            created_at=ended,
            filename=f"{self.batch.id}_{kind}.jsonl",
            purpose="batch_output",
        )


def find(services: Services, file_id: str, tenant: str) -> BatchFile | None:
    """The batch file ``file_id`` names; None when it names no batch file at all."""
    for prefix, errors in ((OUTPUT_FILE_PREFIX, False), (ERROR_FILE_PREFIX, True)):
        if file_id.startswith(prefix):
            batch_id = "batch_" + file_id.removeprefix(prefix)
            with services.db.read() as session:
                try:
                    batch = batches.get_batch(session, batch_id, tenant)
                except NotFound:
                    raise NotFound(f"no file {file_id!r}") from None
            if batch.status not in ENDED_BATCH_STATES:
                raise NotFound(f"no file {file_id!r} (the batch has not ended)")
            return BatchFile(file_id, batch, errors)
    return None


def _suffix(job: Job) -> str:
    """Unique per request: the batch's hex and the request's position in it."""
    return f"{job.batch_id.removeprefix('batch_')}_{job.position}"


def output_line(job: Job) -> dict[str, Any]:
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


def _aivvm_completion(job: Job) -> dict[str, Any]:
    content = job.output or ""
    return {
        "id": f"chatcmpl-{_suffix(job)}",
        "object": "chat.completion",
        "created": unix(job.finished_at),
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


def error_line(job: Job) -> dict[str, Any]:
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
