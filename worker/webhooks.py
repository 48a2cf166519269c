"""Webhook delivery: the outbox's due events posted to their endpoints, signed.

It runs on a thread of the dispatcher process, never in a worker, with its own event loop:
at most ``webhook_concurrency`` tries at once, each bounded as a whole by
``webhook_timeout`` (name resolution, connection, request and answer). Every try is
signed with the Standard Webhooks scheme (``webhook-id``: the event's id, the same on every
retry; ``webhook-timestamp``; ``webhook-signature``), by the ``standardwebhooks`` package.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from datetime import datetime

import httpx
from standardwebhooks.webhooks import Webhook

from models.db import Database
from models.deliveries import Backoff, Due, any_due, claim_due, record_try
from models.settings import Settings
from models.types import utcnow
from models.webhook_urls import RefusedUrl, Target, check_url
from worker.outage import Outages

log = logging.getLogger(__name__)

POLL_SECONDS = 0.5
# A claim outlives its try by this much, so the report is written before anyone retries.
HOLD_MARGIN_SECONDS = 3.0
# Only the start of a receiver's answer is kept, for the endpoint's last_error.
ANSWER_BYTES = 200
USER_AGENT = "aivbatch-webhooks/0.1"


def payload(due: Due) -> bytes:
    """The event as OpenAI sends it: ``{"object": "event", "id", "type", "created_at",
    "data": {"id": batch_id}}``, compact UTF-8 JSON (the bytes that are signed)."""
    event = {
        "object": "event",
        "id": due.event_id,
        "type": due.event_type,
        "created_at": int(due.event_created_at.timestamp()),
        "data": {"id": due.batch_id},
    }
    return json.dumps(event, separators=(",", ":")).encode()


def signed_headers(secret: str, event_id: str, at: datetime, body: bytes) -> dict[str, str]:
    """The Standard Webhooks headers of one try."""
    at = at.replace(microsecond=0)
    return {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "webhook-id": event_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": Webhook(secret).sign(event_id, at, body.decode()),
    }


class WebhookSender:
    """Claims due deliveries and makes their tries, until told to stop."""

    def __init__(self, settings: Settings, db: Database) -> None:
        self.settings = settings
        self.db = db
        self.backoff = Backoff(
            settings.webhook_retry_base_delay,
            settings.webhook_retry_max_delay,
            settings.webhook_retry_window,
        )
        self.hold = settings.webhook_timeout + HOLD_MARGIN_SECONDS

    def run(self, stop: threading.Event) -> None:
        """Deliver until ``stop`` is set (call on a thread of its own)."""
        asyncio.run(self._loop(stop))

    async def _loop(self, stop: threading.Event) -> None:
        limits = httpx.Limits(max_connections=self.settings.webhook_concurrency)
        tasks: set[asyncio.Task[None]] = set()
        outages = Outages(log)
        async with httpx.AsyncClient(limits=limits, follow_redirects=False) as client:
            while not stop.is_set():
                tasks = {t for t in tasks if not t.done()}
                free = self.settings.webhook_concurrency - len(tasks)
                try:
                    due = await asyncio.to_thread(self._claim, free)
                    outages.ok()
                except Exception as exc:
                    outages.handle(exc, "claiming webhook deliveries")
                    due = []
                for item in due:
                    tasks.add(asyncio.create_task(self._deliver(client, item)))
                await asyncio.sleep(POLL_SECONDS)
            if tasks:
                # Tries under way finish (each is bounded); none is started any more.
                await asyncio.wait(tasks, timeout=self.hold)

    def _claim(self, limit: int) -> list[Due]:
        if limit <= 0:
            return []
        # SQLite has one writer: polling with a write transaction would queue the workers.
        with self.db.read() as session:
            if not any_due(session, now=utcnow()):
                return []
        with self.db.write() as session:
            return claim_due(session, limit, now=utcnow(), hold_seconds=self.hold)

    async def _deliver(self, client: httpx.AsyncClient, due: Due) -> None:
        timeout = self.settings.webhook_timeout
        try:
            status_code, error = await asyncio.wait_for(self.send(client, due), timeout)
        except TimeoutError:
            status_code, error = None, f"no answer within {timeout:g}s"
        try:
            outcome = await asyncio.to_thread(self._record, due, status_code, error)
        except Exception as exc:
            # Unrecorded, the claim runs out and the event is sent again: at least once.
            log.warning(
                "could not record webhook try %s (%s); it will be made again",
                due.delivery_id,
                type(exc).__name__,
            )
            return
        log.info(
            "webhook %s (%s) to %s, try %d: %s -> %s",
            due.event_id,
            due.event_type,
            due.endpoint_id,
            due.attempt,
            error or status_code,
            outcome or "superseded",
        )

    def _record(self, due: Due, status_code: int | None, error: str | None) -> str | None:
        with self.db.write() as session:
            return record_try(
                session,
                due,
                status_code=status_code,
                error=error,
                now=utcnow(),
                backoff=self.backoff,
            )

    async def send(self, client: httpx.AsyncClient, due: Due) -> tuple[int | None, str | None]:
        """One signed try: the answer's status, and what went wrong (None for a 2xx)."""
        allow = self.settings.webhook_allow_private
        try:
            target = await asyncio.to_thread(check_url, due.url, allow_private=allow)
        except RefusedUrl as exc:
            return None, f"refused: {str(exc).removeprefix('url: ')}"
        body = payload(due)
        headers = signed_headers(due.secret, due.event_id, utcnow(), body)
        url, extensions = _pinned(target)
        headers["host"] = httpx.URL(target.url).netloc.decode()
        try:
            async with client.stream(
                "POST", url, content=body, headers=headers, extensions=extensions
            ) as answer:
                head = b""
                async for block in answer.aiter_bytes():
                    head += block
                    if len(head) >= ANSWER_BYTES:
                        break
        except httpx.HTTPError as exc:
            return None, f"{type(exc).__name__}: {exc}".rstrip(": ")
        if 200 <= answer.status_code < 300:
            return answer.status_code, None
        text = head[:ANSWER_BYTES].decode(errors="replace").strip()
        return answer.status_code, f"HTTP {answer.status_code}" + (f": {text}" if text else "")


def _pinned(target: Target) -> tuple[httpx.URL, dict[str, str]]:
    """The URL with its host replaced by the address that was checked, so a name cannot
    resolve to another address between the check and the connection; TLS still checks the
    certificate against the name."""
    url = httpx.URL(target.url).copy_with(host=str(target.addresses[0]))
    return url, ({"sni_hostname": target.host} if target.scheme == "https" else {})


def start(settings: Settings, db: Database, stop: threading.Event) -> threading.Thread:
    """Start delivering on a thread of its own; it ends soon after ``stop`` is set."""
    thread = threading.Thread(
        target=WebhookSender(settings, db).run, args=(stop,), name="webhooks", daemon=True
    )
    thread.start()
    return thread
