"""Checking a batch input file before anything is stored (what the dashboard's submit page
shows line by line).

The route reads its multipart form itself: any bytes are a file to check (the answer says
what is wrong with them), so the document declares the file without a type, and only the
two text fields can be malformed.
"""

from __future__ import annotations

import io
import re
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from api.deps import ServicesDep, get_tenant
from api.errors import ApiError
from api.input_check import check_input
from api.openapi import AUTHENTICATED, errors
from api.public import InputCheck
from models import batches
from models.batches import WINDOW_PATTERN
from models.requests import MAX_MODEL

router = APIRouter(prefix="/v1/input_checks", tags=["files"])

# A form sends an empty field for one left blank: it means "the default", as leaving it out.
_MODEL = r"^$|^[^\x00]*[^\s\x00][^\x00]*$"
_WINDOW = "^$|" + WINDOW_PATTERN
_FORM = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {"description": "The file: any bytes (JSONL is expected)."},
                        "model": {
                            "type": "string",
                            "maxLength": MAX_MODEL,
                            "pattern": _MODEL,
                            "description": "Default model of the lines (empty: gpt-3.5-turbo).",
                        },
                        "completion_window": {
                            "type": "string",
                            "pattern": _WINDOW,
                            "description": "'30m', '24h', '7d' (empty: the server's default).",
                        },
                    },
                }
            }
        },
    }
}


def _field(form: Any, name: str, pattern: str, max_length: int) -> str:
    value = form.get(name, "")
    if not isinstance(value, str) or len(value) > max_length or not re.fullmatch(pattern, value):
        raise ApiError(f"{name}: not a valid value", param=name)
    return value


@router.post(
    "",
    summary="Check a batch input file",
    responses=errors(400, 413, *AUTHENTICATED),
    openapi_extra=_FORM,
    # Authenticated like every route, though the check reads nothing of the tenant's.
    dependencies=[Depends(get_tenant)],
)
async def check(request: Request, services: ServicesDep) -> InputCheck:
    """Check a JSONL input file (multipart `file`, `model`?, `completion_window`?) by the
    rules of upload and create, and store nothing.

    A file with bad lines is a valid question: the answer is `valid: false` naming every
    bad line. Only a malformed call (no file, a bad window) is refused.
    """
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "multipart/form-data":
        raise ApiError("the body must be multipart/form-data with a file", param="file")
    async with request.form() as form:
        model = _field(form, "model", _MODEL, MAX_MODEL)
        window = _field(form, "completion_window", _WINDOW, 16)
        window = window or services.settings.default_completion_window
        batches.parse_window(window)
        upload = form.get("file")
        if upload is None:
            raise ApiError("file: a file is required", param="file")
        if isinstance(upload, UploadFile):
            return await run_in_threadpool(
                check_input, services, upload.file, model or None, window
            )
        content = upload.encode()
    return await run_in_threadpool(
        check_input, services, io.BytesIO(content), model or None, window
    )
