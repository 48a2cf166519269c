"""A batch's OpenAI output and error files, built from SQL as they are read.

The output file holds one line per succeeded request, the error file one per request that
did not succeed, both in input order, in OpenAI's batch output format (models/lines.py).
Only their size is stored, counted as each job ends (models/counters.py); the ids name the
batch (``file-output-<batch>``, ``file-errors-<batch>``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from api.responses import FileObject
from api.services import Services
from api.views import ERROR_FILE_PREFIX, OUTPUT_FILE_PREFIX, file_object, jsonl
from models import batches, counters, results
from models.errors import NotFound
from models.lines import error_line, output_line
from models.states import ENDED_BATCH_STATES, UNSUCCESSFUL_JOB_STATES, JobStatus
from models.tables import Batch


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

    def size(self, services: Services) -> int:
        """The file's size in bytes, as its jobs' counters hold it.

        A batch that ended before counters were kept has no size yet: it is counted by
        reading the content through once, and kept.
        """
        with services.db.read() as session:
            size = counters.file_bytes(session, self.batch.id, errors=self.errors)
        if size is None:
            size = sum(len(line) for line in self.lines(services))
            with services.db.write() as session:
                counters.keep_file_bytes(session, self.batch.id, size, errors=self.errors)
        return size

    def describe(self, services: Services) -> FileObject:
        """The file object."""
        size = self.size(services)
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
