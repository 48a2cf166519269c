"""Files (OpenAI's Files API): batch input files, and the output files of ended batches."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response, StreamingResponse

from api import output_files
from api.batch_input import Limits, parse_jsonl
from api.deps import ServicesDep, TenantDep
from api.errors import ApiError
from api.services import Services
from api.views import list_object, stored_file_object
from models import files
from models.errors import Conflict
from models.requests import Defaults
from models.types import utcnow

router = APIRouter(prefix="/v1/files", tags=["files"])

PURPOSES = ("batch",)
MAX_FILENAME = 255


def _store(
    services: Services, tenant: str, purpose: str, filename: str, content: bytes
) -> dict[str, Any]:
    settings = services.settings
    # Checked now, so a bad file is refused at upload, naming its lines, not at batch time.
    parse_jsonl(
        content, Defaults(), Limits(settings.max_requests_per_batch, settings.max_request_bytes)
    )
    with services.db.write() as session:
        row = files.create_file(
            session,
            tenant_id=tenant,
            purpose=purpose,
            filename=filename[:MAX_FILENAME],
            content=content,
            now=utcnow(),
        )
        return stored_file_object(row)


@router.post("", summary="Upload a file")
async def upload(
    file: UploadFile,
    purpose: Annotated[str, Form(description="Must be 'batch'.")],
    services: ServicesDep,
    tenant: TenantDep,
) -> dict[str, Any]:
    """Upload a batch input file (JSONL); every line is checked before it is kept."""
    if purpose not in PURPOSES:
        raise ApiError(f"purpose must be 'batch', not {purpose!r}", param="purpose")
    content = await file.read()
    return await run_in_threadpool(
        _store, services, tenant, purpose, file.filename or "upload.jsonl", content
    )


@router.get("", summary="List files")
def list_(
    services: ServicesDep,
    tenant: TenantDep,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
    after: Annotated[str | None, Query()] = None,
    purpose: Annotated[str | None, Query()] = None,
) -> dict[str, Any]:
    """The caller's uploaded files, newest first."""
    with services.db.read() as session:
        rows = files.list_files(session, tenant, limit=limit + 1, after=after, purpose=purpose)
    data = [stored_file_object(row) for row in rows[:limit]]
    return list_object(data, has_more=len(rows) > limit)


@router.get("/{file_id}", summary="Retrieve a file")
def retrieve(file_id: str, services: ServicesDep, tenant: TenantDep) -> dict[str, Any]:
    """A file object: an upload, or a batch's output or error file."""
    batch_file = output_files.find(services, file_id, tenant)
    if batch_file is not None:
        return batch_file.describe(services)
    with services.db.read() as session:
        return stored_file_object(files.get_file(session, file_id, tenant))


@router.get("/{file_id}/content", summary="A file's content", response_class=Response)
def content(file_id: str, services: ServicesDep, tenant: TenantDep) -> Response:
    """The file's bytes; a batch's output and error files are streamed from SQL."""
    batch_file = output_files.find(services, file_id, tenant)
    if batch_file is not None:
        return StreamingResponse(batch_file.lines(services), media_type="application/jsonl")
    with services.db.read() as session:
        row = files.get_file(session, file_id, tenant, with_content=True)
        return Response(row.content, media_type="application/jsonl")


@router.delete("/{file_id}", summary="Delete a file")
def delete(file_id: str, services: ServicesDep, tenant: TenantDep) -> dict[str, Any]:
    """Delete an uploaded file (batches made from it keep their requests)."""
    if output_files.find(services, file_id, tenant) is not None:
        raise Conflict(f"{file_id!r} is built from its batch's results and cannot be deleted")
    with services.db.write() as session:
        files.delete_file(session, file_id, tenant)
    return {"id": file_id, "object": "file", "deleted": True}
