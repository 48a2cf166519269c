"""The Redis key contract: every key and entry field users may read, built in one place.

Version 1 (documented for users in docs/redis.md):

``{prefix}:v1:batch:{batch_id}:job:{custom_id}`` — stream, one per job that has started.
    Entries ``event=chunk attempt=N text=… offset=… ts=…`` as the answer arrives (coalesced:
    one entry may hold several network chunks; ``offset`` is where the text starts in the
    attempt's answer, in characters; ``ts`` is when the worker received the first of them,
    unix milliseconds), ``event=retry attempt=N code=… message=…`` when attempt N
    is abandoned and the job goes back to the queue, and one terminal entry per job:
    ``event=done attempt=N status=succeeded chars=…`` or ``event=error attempt=N
    status=failed|cancelled|expired code=… message=…``.
    Answers with more than one choice or with tool calls add entries that v1 readers of
    ``chunk`` entries may ignore: ``event=delta attempt=N choice=K text=… ts=…`` (the text of
    choice K ≥ 1) and ``event=tool_call attempt=N choice=K index=I [id=… name=…]
    arguments=… ts=…`` (a piece of tool call I of choice K).
``{prefix}:v1:batch:{batch_id}:progress`` — hash: ``status`` (the batch's), ``total``, one
    field per job state with its count, ``updated_at`` (unix seconds).
``{prefix}:v1:batch:{batch_id}:events`` — stream of state changes: ``event=job
    custom_id=… status=… attempt=N [code=…]`` and ``event=batch status=…``.

``{prefix}:v1:epoch`` — string the dispatcher sets; when it is gone, Redis lost its data and
    the streams of recently finished jobs are rewritten from SQL.
``{prefix}:v1:metrics`` — hash of counters pooled by the workers for ``/metrics`` (not a
    record of work; it does not expire).
``{prefix}:v1:limits/…`` — the API's rate-limit windows (the ``limits`` package's keys;
    each expires with its window).
``{prefix}:v1:tenant:{tenant}:streams`` — sorted set of a tenant's open event streams
    (member: a stream's id, score: when its lease ends, unix seconds).

``{prefix}:v1:upstream:{name}:permits`` — sorted set: the streams open to that upstream
    across every worker (member ``{worker}:{job id}``, score: when its lease ends, in Redis
    server milliseconds); an expired member is a permit given back.
``{prefix}:v1:upstream:{name}:paused`` — string with a TTL: the upstream asked (429 with
    Retry-After) that nobody call it before the key expires.
``{prefix}:v1:upstream:LIMITER/{name}/{n}/1/minute`` — the ``limits`` package's moving window
    of the upstream's ``requests_per_minute``.

Every other key expires ``retention`` seconds after its last write. Redis may lose all of this at
any moment: SQL holds every result, and the progress hash is rewritten from SQL.
"""

from __future__ import annotations

from dataclasses import dataclass

from models.states import JobStatus

CONTRACT_VERSION = "v1"

# Entry fields of the job and batch event streams.
F_EVENT = "event"
F_ATTEMPT = "attempt"
F_TEXT = "text"
F_STATUS = "status"
F_CODE = "code"
F_MESSAGE = "message"
F_CHARS = "chars"
F_CUSTOM_ID = "custom_id"
F_TS = "ts"
F_OFFSET = "offset"
F_CHOICE = "choice"
F_INDEX = "index"
F_ID = "id"
F_NAME = "name"
F_ARGUMENTS = "arguments"

# Values of the ``event`` field.
EV_CHUNK = "chunk"
EV_DELTA = "delta"
EV_TOOL_CALL = "tool_call"
EV_RETRY = "retry"
EV_DONE = "done"
EV_ERROR = "error"
EV_JOB = "job"
EV_BATCH = "batch"
TERMINAL_EVENTS = (EV_DONE, EV_ERROR)

# Approximate cap on a batch event stream, so a 50,000-request batch stays bounded.
EVENTS_MAXLEN = 100_000


@dataclass(frozen=True, slots=True)
class RedisKeys:
    """Builds the contract's key names under one prefix."""

    prefix: str = "aivbatch"

    def _batch(self, batch_id: str) -> str:
        return f"{self.prefix}:{CONTRACT_VERSION}:batch:{batch_id}"

    def job_stream(self, batch_id: str, custom_id: str) -> str:
        """The stream of one job's chunks and terminal entry."""
        return f"{self._batch(batch_id)}:job:{custom_id}"

    def batch_progress(self, batch_id: str) -> str:
        """The hash of a batch's counts by state."""
        return f"{self._batch(batch_id)}:progress"

    def batch_events(self, batch_id: str) -> str:
        """The stream of a batch's state changes."""
        return f"{self._batch(batch_id)}:events"

    @property
    def epoch(self) -> str:
        """A marker the dispatcher keeps; finding it gone means Redis lost its data."""
        return f"{self.prefix}:{CONTRACT_VERSION}:epoch"

    @property
    def metrics(self) -> str:
        """The hash of counters the workers pool for the API's /metrics (models/jobmetrics.py)."""
        return f"{self.prefix}:{CONTRACT_VERSION}:metrics"

    def upstream_permits(self, name: str) -> str:
        """The sorted set of an upstream's open streams, scored by lease end."""
        return f"{self.upstream_prefix}:{name}:permits"

    def upstream_paused(self, name: str) -> str:
        """The key that exists while an upstream asked to be left alone (a 429)."""
        return f"{self.upstream_prefix}:{name}:paused"

    @property
    def upstream_prefix(self) -> str:
        """The prefix of the upstream keys (the rate limiter's keys start with it too)."""
        return f"{self.prefix}:{CONTRACT_VERSION}:upstream"

    @property
    def limits(self) -> str:
        """The prefix of the API's rate-limit windows."""
        return f"{self.prefix}:{CONTRACT_VERSION}:limits"

    def tenant_streams(self, tenant: str) -> str:
        """The sorted set of a tenant's open event streams and their leases."""
        return f"{self.prefix}:{CONTRACT_VERSION}:tenant:{tenant}:streams"

    @property
    def queue(self) -> str:
        """The broker queue the dispatcher sends job groups to."""
        return f"{self.prefix}.jobs"


def chunk_entry(attempt: int, text: str, *, offset: int, ts_ms: int) -> dict[str, str]:
    """A job stream's entry for answer text: ``offset`` is where ``text`` starts in the
    attempt's answer, in characters, so a reader can tell a gap (or a rewrite) from more."""
    return {
        F_EVENT: EV_CHUNK,
        F_ATTEMPT: str(attempt),
        F_TEXT: text,
        F_OFFSET: str(offset),
        F_TS: str(ts_ms),
    }


def outcome_entry(
    status: str, attempt: int, *, chars: int, code: str | None, message: str | None
) -> dict[str, str]:
    """A job stream's entry for how an attempt ended: terminal, or a retry."""
    if status == JobStatus.SUCCEEDED:
        entry = {F_EVENT: EV_DONE, F_STATUS: status, F_CHARS: str(chars)}
    else:
        entry = {
            F_EVENT: EV_RETRY if status == JobStatus.QUEUED else EV_ERROR,
            F_STATUS: status,
            F_CODE: code or "",
            F_MESSAGE: message or "",
        }
    entry[F_ATTEMPT] = str(attempt)
    return entry
