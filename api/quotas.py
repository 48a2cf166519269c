"""What one tenant may keep at once: unfinished batches, the requests they hold, and the
bytes of its uploaded files. Counted in SQL, which every API process shares; checked in
the transaction that would go over, so two calls racing can pass a limit by at most what
the other one adds.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from api.errors import TooManyRequests
from models import batches, files
from models.settings import Settings

# A quota frees up when work finishes or a file is deleted: there is no telling when.
QUOTA_RETRY_AFTER = 60


def _refuse(message: str, setting: str) -> TooManyRequests:
    return TooManyRequests(
        f"{message} ({setting})", retry_after=QUOTA_RETRY_AFTER, code="quota_exceeded"
    )


def check_new_batch(session: Session, settings: Settings, tenant: str, requests: int) -> None:
    """Refuse a batch of ``requests`` that would take the tenant over a quota."""
    open_batches, queued = batches.open_work(session, tenant)
    if open_batches >= settings.tenant_max_open_batches:
        raise _refuse(
            f"{open_batches} batches are unfinished, the most a tenant may have",
            "AIVBATCH_TENANT_MAX_OPEN_BATCHES",
        )
    if queued + requests > settings.tenant_max_queued_requests:
        raise _refuse(
            f"{queued} requests are in unfinished batches; {requests} more would pass the"
            f" limit of {settings.tenant_max_queued_requests}",
            "AIVBATCH_TENANT_MAX_QUEUED_REQUESTS",
        )


def check_upload(session: Session, settings: Settings, tenant: str, size: int) -> None:
    """Refuse a file of ``size`` bytes that would take the tenant over its storage quota."""
    stored = files.stored_bytes(session, tenant)
    if stored + size > settings.tenant_max_stored_bytes:
        raise _refuse(
            f"the tenant keeps {stored} bytes of files; {size} more would pass the limit of"
            f" {settings.tenant_max_stored_bytes}",
            "AIVBATCH_TENANT_MAX_STORED_BYTES",
        )
