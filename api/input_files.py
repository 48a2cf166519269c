"""The input file of a batch submitted inline, built from SQL as it is read.

OpenAI's batch object names an input file for every batch (its ``Batch`` type requires
one), so a batch whose requests came inline names ``file-input-<batch>``: its requests as
OpenAI batch lines, in input order, each with the model, temperature and system message it
runs with. Nothing is stored; like a batch's output files, it cannot be deleted.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from api.responses import FileObject
from api.services import Services
from api.views import INPUT_FILE_PREFIX, file_object, jsonl
from models import batches, results
from models.errors import NotFound
from models.states import JobStatus
from models.tables import Batch, Job


@dataclass(frozen=True, slots=True)
class InputFile:
    """The input file of one inline batch."""

    file_id: str
    batch: Batch

    def lines(self, services: Services) -> Iterator[bytes]:
        """The file's content, line by line."""
        rows = results.finished_jobs(services.db.read, self.batch.id, states=tuple(JobStatus))
        return jsonl(request_line(job, self.batch) for job in rows)

    def describe(self, services: Services) -> FileObject:
        """The file object; its size is counted by reading the content through once."""
        return file_object(
            self.file_id,
            size=sum(len(line) for line in self.lines(services)),
            created_at=self.batch.created_at,
            filename=f"{self.batch.id}_input.jsonl",
            purpose="batch",
        )


def find(services: Services, file_id: str, tenant: str) -> InputFile | None:
    """The input file ``file_id`` names; None when it names no inline batch's input."""
    if not file_id.startswith(INPUT_FILE_PREFIX):
        return None
    batch_id = "batch_" + file_id.removeprefix(INPUT_FILE_PREFIX)
    with services.db.read() as session:
        try:
            batch = batches.get_batch(session, batch_id, tenant)
        except NotFound:
            raise NotFound(f"no file {file_id!r}") from None
    if batch.input_file_id is not None:
        raise NotFound(f"no file {file_id!r} (the batch was made from {batch.input_file_id})")
    return InputFile(file_id, batch)


def request_line(job: Job, batch: Batch) -> dict[str, Any]:
    """One request as an OpenAI batch line."""
    body: dict[str, Any] = {"model": job.model}
    if job.messages:
        body["messages"] = job.messages
    body.update(job.params or {})
    if job.temperature is not None:
        body["temperature"] = job.temperature
    system_message = job.system_message if job.system_message is not None else batch.system_message
    if system_message is not None:
        body["system_message"] = system_message
    return {"custom_id": job.custom_id, "method": "POST", "url": batch.endpoint, "body": body}
