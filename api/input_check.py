"""Checking a batch input file by the rules of upload and create, storing nothing."""

from __future__ import annotations

from collections import Counter
from typing import IO

from api.batch_input import Intake, Limits, take_jsonl
from api.errors import MAX_REPORTED_LINES, BadRequests
from api.public import InputCheck
from api.responses import LineError
from api.services import Services
from api.uploads import pieces
from models.batches import NewJob
from models.requests import DEFAULT_MODEL, Defaults


def check_input(
    services: Services, content: IO[bytes], model: str | None, window: str
) -> InputCheck:
    """What the file would make; a file with bad lines is answered, not refused."""
    settings = services.settings
    limits = Limits(settings.max_requests_per_batch, settings.max_request_bytes)
    models: Counter[str] = Counter()

    def count(job: NewJob, _messages: str) -> None:
        models[job.model] += 1

    intake = Intake(Defaults(model=model or DEFAULT_MODEL), limits, label="line", sink=count)
    problems = []
    message = None
    try:
        take_jsonl(intake, pieces(content))
    except BadRequests as exc:
        problems, message = exc.problems, exc.message
    return InputCheck(
        valid=not problems,
        requests=intake.count,
        models=dict(models) if not problems else {},
        completion_window=window,
        errors=[LineError(line=p.line, message=p.message) for p in problems[:MAX_REPORTED_LINES]],
        error_count=len(problems),
        message=message,
    )
