"""Creating a batch: from the inline requests of a JSON body, or from an uploaded file.

One write transaction holds the batch and its jobs, written in chunks as the requests are
checked (in a thread, api/overlap.py); after a bad request nothing more is written and the
transaction is rolled back, and the rest are still checked so the answer names every bad
one. The body was received whole before (api/body.py), so the
transaction never waits on the client.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import IO, Any

from sqlalchemy.orm import Session

from api.batch_input import Intake, Limits, take_jsonl
from api.errors import ApiError, BadRequests
from api.inline_input import Outline, read_outline, requests
from api.overlap import CheckThread
from api.quotas import check_new_batch
from api.responses import BatchObject
from api.schemas import ID_PATTERN
from api.services import Services
from api.views import present
from models import files
from models.batches import BatchSpec, BatchWriter, parse_window
from models.endpoints import CHAT, ENDPOINTS
from models.errors import InvalidInput
from models.requests import Defaults, InvalidRequest, defaults_from, require_text
from models.tables import Batch
from models.types import utcnow

MAX_METADATA_PAIRS = 16
MAX_METADATA_KEY = 64
MAX_METADATA_VALUE = 512


class _Abandon(Exception):
    """A bad request was found: leave the transaction (it rolls back), keep checking."""


def _optional_str(fields: dict[str, Any], name: str) -> str | None:
    value = fields.get(name)
    if value is not None and not isinstance(value, str):
        raise ApiError(f"{name} must be a string", param=name)
    return value


def _metadata(value: Any) -> dict[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise ApiError("metadata must be an object of string values", param="metadata")
    if len(value) > MAX_METADATA_PAIRS:
        raise ApiError(f"metadata: at most {MAX_METADATA_PAIRS} pairs", param="metadata")
    for key, item in value.items():
        if len(key) > MAX_METADATA_KEY or len(item) > MAX_METADATA_VALUE:
            raise ApiError(
                f"metadata: keys are at most {MAX_METADATA_KEY} characters,"
                f" values at most {MAX_METADATA_VALUE}",
                param="metadata",
            )
        try:
            require_text(key, "metadata")
            require_text(item, "metadata")
        except InvalidRequest as exc:
            raise ApiError(str(exc), param="metadata") from exc
    return value


def _defaults(fields: dict[str, Any]) -> Defaults:
    """The batch-level defaults, by the same rules as a request's own values."""
    given = {name: fields.get(name) for name in ("model", "temperature", "system_message")}
    for name, value in given.items():
        try:
            defaults_from(**{**dict.fromkeys(given), name: value})
        except InvalidRequest as exc:
            raise ApiError(str(exc), param=name) from exc
    return defaults_from(**given)


def spec_of(outline: Outline, services: Services, tenant: str) -> tuple[BatchSpec, Defaults]:
    """The new batch's fields and its requests' defaults, checked, from the body's outline."""
    fields = outline.fields
    file_id = _optional_str(fields, "input_file_id")
    if file_id is not None and not re.match(ID_PATTERN, file_id):
        raise ApiError("input_file_id is not a file id", param="input_file_id")
    # "requests": null is no requests, as an absent field is.
    outline.has_requests = outline.has_requests and outline.requests_kind != "null"
    if outline.has_requests == (file_id is not None):
        raise ApiError("give either requests (inline) or input_file_id", param="requests")
    if outline.has_requests and outline.requests_kind != "array":
        raise ApiError(f"requests must be a list, not {outline.requests_kind}", param="requests")
    endpoint = _optional_str(fields, "endpoint")
    endpoint = CHAT if endpoint is None else endpoint
    if endpoint not in ENDPOINTS:
        raise ApiError(f"endpoint: must be one of {', '.join(ENDPOINTS)}", param="endpoint")
    window = _optional_str(fields, "completion_window")
    window = window or services.settings.default_completion_window
    try:
        parse_window(window)
    except InvalidInput as exc:
        raise ApiError(str(exc), param="completion_window") from exc
    defaults = _defaults(fields)
    spec = BatchSpec(
        tenant_id=tenant,
        completion_window=window,
        now=utcnow(),
        metadata=_metadata(fields.get("metadata")),
        input_file_id=file_id,
        endpoint=endpoint,
        system_message=defaults.system_message,
    )
    # Jobs that set no system message of their own take the batch's, stored once.
    return spec, Defaults(model=defaults.model, temperature=defaults.temperature, endpoint=endpoint)


def create_batch(services: Services, tenant: str, body: IO[bytes]) -> BatchObject:
    """Create a batch from a spooled ``POST /v1/batches`` body; raises ApiError if refused."""
    settings = services.settings
    outline, backend = read_outline(body)
    spec, defaults = spec_of(outline, services, tenant)
    limits = Limits(settings.max_requests_per_batch, settings.max_request_bytes)
    if outline.has_requests:
        if outline.count == 0:
            raise ApiError("requests: a batch needs at least one request", param="requests")
        if outline.count > limits.max_requests:
            raise BadRequests.too_many(outline.count, limits.max_requests)
    label = "request" if outline.has_requests else "line"
    intake = Intake(
        defaults,
        limits,
        label=label,
        batch_system_message=spec.system_message,
        routing=services.routing,
    )
    try:
        with services.db.write() as session:
            if outline.has_requests:
                check_new_batch(session, settings, tenant, outline.count)
                source = requests(body, backend)
                batch = _write(session, spec, intake, lambda thread: _take(intake, thread, source))
            else:
                batch = _write_from_file(session, services, spec, intake)
            return present(session, [batch])[0]
    except _Abandon:
        pass
    # Rolled back; every request was checked, so the answer names every bad one.
    intake.finish()
    raise AssertionError("a batch with a bad request was not refused")


def _take(intake: Intake, thread: CheckThread, source: Iterator[tuple[int, Any]]) -> None:
    for n, obj in thread.stoppable(source):
        intake.take(n, obj)


def _write(
    session: Session, spec: BatchSpec, intake: Intake, check: Callable[[CheckThread], object]
) -> Batch:
    """Write the jobs ``check`` finds good as it goes; _Abandon if it finds a bad one."""
    writer = BatchWriter(session, spec)
    try:
        with CheckThread(intake, check) as thread:
            for chunk in thread.chunks():
                if intake.failed:
                    continue  # rolled back at the end: the rest are only checked
                for job, text in chunk:
                    writer.add(job, text)
        if intake.failed:
            raise _Abandon
        intake.finish()
    except BaseException as exc:
        writer.abandon(exc)  # PostgreSQL: the COPY under way ends before the rollback
        raise
    return writer.finish()


def _write_from_file(
    session: Session, services: Services, spec: BatchSpec, intake: Intake
) -> Batch:
    assert spec.input_file_id is not None
    stored = files.get_file(session, spec.input_file_id, spec.tenant_id)
    if stored.purpose != "batch":
        raise ApiError(
            f"file {stored.id!r} has purpose {stored.purpose!r}, not 'batch'",
            param="input_file_id",
        )

    def check(thread: CheckThread) -> None:
        # The checks' thread reads the content in its own short read transactions (the
        # session stays with this thread); a bad line rolls the batch back all the same.
        take_jsonl(intake, thread.stoppable(files.read_content(services.db.read, stored.id)))

    batch = _write(session, spec, intake, check)
    check_new_batch(session, services.settings, spec.tenant_id, intake.count)
    return batch
