"""Files (OpenAI's Files API): batch input files, and the output files of ended batches."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, File, Form, Query, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse

from api import input_files, output_files
from api.deps import ServicesDep, TenantDep
from api.openapi import AUTHENTICATED, errors
from api.params import After, FileId
from api.responses import FileDeleted, FileList, FileObject
from api.schemas import ID_PATTERN
from api.services import Services
from api.uploads import store_upload
from api.views import file_list, stored_file_object
from models import files
from models.errors import Conflict

router = APIRouter(prefix="/v1/files", tags=["files"])


def _batch_file(
    services: Services, file_id: str, tenant: str
) -> output_files.BatchFile | input_files.InputFile | None:
    """The file a batch's results or inline requests make, if ``file_id`` names one."""
    return input_files.find(services, file_id, tenant) or output_files.find(
        services, file_id, tenant
    )


@router.post("", summary="Upload a file", responses=errors(400, 413, 422, *AUTHENTICATED))
async def upload(
    file: Annotated[UploadFile, File(description="JSONL: one batch request per line.")],
    purpose: Annotated[Literal["batch"], Form(description="Must be 'batch'.")],
    services: ServicesDep,
    tenant: TenantDep,
) -> FileObject:
    """Upload a batch input file (JSONL); every line is checked before it is kept."""
    name = file.filename or "upload.jsonl"
    return await run_in_threadpool(store_upload, services, tenant, purpose, name, file.file)


@router.get("", summary="List files", responses=errors(400, 404, *AUTHENTICATED))
def list_(
    services: ServicesDep,
    tenant: TenantDep,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
    after: After = None,
    purpose: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
) -> FileList:
    """The caller's uploaded files, newest first.

    The files a batch makes (its output and error files, an inline batch's input file) are
    not listed here: the batch object names them, and the routes below read them.
    """
    with services.db.read() as session:
        rows = files.list_files(session, tenant, limit=limit + 1, after=after, purpose=purpose)
    data = [stored_file_object(row) for row in rows[:limit]]
    return file_list(data, has_more=len(rows) > limit)


@router.get("/{file_id}", summary="Retrieve a file", responses=errors(400, 404, *AUTHENTICATED))
def retrieve(file_id: FileId, services: ServicesDep, tenant: TenantDep) -> FileObject:
    """A file object: an upload, a batch's output or error file, an inline batch's input."""
    batch_file = _batch_file(services, file_id, tenant)
    if batch_file is not None:
        return batch_file.describe(services)
    with services.db.read() as session:
        return stored_file_object(files.get_file(session, file_id, tenant))


@router.get(
    "/{file_id}/content",
    summary="A file's content",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"application/jsonl": {"schema": {"type": "string"}}}},
        **errors(400, 404, *AUTHENTICATED),
    },
)
def content(file_id: FileId, services: ServicesDep, tenant: TenantDep) -> StreamingResponse:
    """The file's bytes, streamed: an upload piece by piece, a batch's files from SQL."""
    batch_file = _batch_file(services, file_id, tenant)
    if batch_file is not None:
        return StreamingResponse(batch_file.lines(services), media_type="application/jsonl")
    with services.db.read() as session:
        row = files.get_file(session, file_id, tenant)
    return StreamingResponse(
        files.read_content(services.db.read, row.id), media_type="application/jsonl"
    )


@router.delete(
    "/{file_id}", summary="Delete a file", responses=errors(400, 404, 409, *AUTHENTICATED)
)
def delete(file_id: FileId, services: ServicesDep, tenant: TenantDep) -> FileDeleted:
    """Delete an uploaded file (batches made from it keep their requests)."""
    if _batch_file(services, file_id, tenant) is not None:
        raise Conflict(f"{file_id!r} is built from its batch's results and cannot be deleted")
    with services.db.write() as session:
        files.delete_file(session, file_id, tenant)
    return FileDeleted(id=file_id, deleted=True)
