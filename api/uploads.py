"""Storing an uploaded batch input file: every line checked, then the content kept in pieces.

The upload arrives spooled to disk by the multipart parser (python-multipart, streaming),
so this reads it twice from there: once to check each line, once to store it piece by
piece. Neither pass holds more than a piece and a line.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from typing import IO

from api.batch_input import Intake, Limits, take_jsonl
from api.quotas import check_upload
from api.responses import FileObject
from api.services import Services
from api.views import stored_file_object
from models import files
from models.requests import Defaults
from models.types import utcnow

MAX_FILENAME = 255
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def pieces(content: IO[bytes]) -> Iterator[bytes]:
    """The content from its start, ``files.PART_BYTES`` at a time."""
    content.seek(0)
    while piece := content.read(files.PART_BYTES):
        yield piece


def store_upload(
    services: Services, tenant: str, purpose: str, filename: str, content: IO[bytes]
) -> FileObject:
    """Check every line of an upload (raising BadRequests naming the bad ones), then keep it."""
    settings = services.settings
    limits = Limits(settings.max_requests_per_batch, settings.max_request_bytes)
    # Checked now, so a bad file is refused at upload, naming its lines, not at batch time.
    take_jsonl(Intake(Defaults(), limits, label="line", routing=services.routing), pieces(content))
    size = content.seek(0, os.SEEK_END)
    with services.db.write() as session:
        check_upload(session, settings, tenant, size)
        row = files.create_file(
            session,
            tenant_id=tenant,
            purpose=purpose,
            filename=_CONTROL.sub("", filename)[:MAX_FILENAME] or "upload.jsonl",
            pieces=pieces(content),
            now=utcnow(),
        )
        return stored_file_object(row)
