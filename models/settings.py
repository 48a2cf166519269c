"""One settings class for every process; each value comes from an ``AIVBATCH_*`` variable."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Configuration of the API, the workers, the dispatcher and the command line."""

    model_config = SettingsConfigDict(env_prefix="AIVBATCH_", extra="ignore")

    # Where things live.
    data_dir: Path = Field(
        default=Path(".aivbatch"), description="Folder for the SQLite file and embedded servers."
    )
    database_url: str = Field(
        default="", description="SQLAlchemy URL; empty means a SQLite file in data_dir."
    )
    redis_url: str = Field(
        default="redis://127.0.0.1:6379/0", description="Redis for the broker and live progress."
    )
    redis_prefix: str = Field(
        default="aivbatch", description="Prefix of every Redis key of the contract."
    )

    # The upstreams.
    config: Path | None = Field(
        default=None,
        description="The routing file (TOML) naming the upstreams; default ./aivbatch.toml"
        " when present, else the Aivvm upstream below.",
    )
    aivvm_url: str | None = Field(
        default=None, description="Base URL of the Aivvm-protocol upstream."
    )
    aivvm_key: SecretStr = Field(
        default=SecretStr(""), description="Sent as the body's `key`; never logged."
    )
    connect_timeout: float = Field(
        default=10.0, gt=0, description="Seconds to open an upstream connection."
    )
    stall_timeout: float = Field(
        default=60.0, gt=0, description="Seconds of upstream silence that end a stream."
    )
    http_keepalive: int = Field(
        default=20, ge=1, description="Idle upstream connections kept per client."
    )
    http_transport: Literal["aiohttp", "httpcore"] = Field(
        default="aiohttp",
        description="Under the workers' httpx clients: aiohttp's HTTP/1.1 (a third of the CPU"
        " per stream, bench/reference.py) or httpx's own httpcore.",
    )
    streams_per_client: int = Field(
        default=64,
        ge=1,
        description="Upstream streams per httpx client; a worker shards its streams over clients.",
    )

    # Execution.
    worker_streams: int = Field(
        default=500, ge=1, description="Upstream streams in flight per worker process."
    )
    max_attempts: int = Field(default=5, ge=1, description="Attempts per job before it fails.")
    retry_base_delay: float = Field(
        default=1.0, ge=0, description="First retry delay in seconds (doubles)."
    )
    retry_max_delay: float = Field(
        default=60.0, ge=0, description="Ceiling of the retry delay in seconds."
    )
    lease_seconds: float = Field(
        default=30.0, gt=0, description="A running job's lease; renewed while streaming."
    )
    dispatch_timeout: float = Field(
        default=60.0, gt=0, description="Seconds a dispatched job may wait unclaimed."
    )
    dispatch_group: int = Field(default=32, ge=1, description="Jobs carried by one broker message.")
    dispatch_backlog: int = Field(
        default=2,
        ge=0,
        description="Extra groups per worker dispatched ahead, so a freed slot never waits.",
    )
    dispatch_interval: float = Field(
        default=0.2, gt=0, description="Seconds between dispatcher passes."
    )
    fair_reserve: float = Field(
        default=0.1,
        ge=0,
        le=1,
        description="Share of a worker's streams kept beyond them for tenants under their"
        " fair share, so a newcomer starts at once while another tenant fills the workers.",
    )
    chunk_flush_ms: float = Field(
        default=25.0, gt=0, description="Chunk coalescing window before Redis writes."
    )
    redis_retention: int = Field(
        default=86400, ge=60, description="Seconds finished work stays in Redis."
    )

    # The API.
    auth_enabled: bool = Field(
        default=True, description="Require bearer API keys; off only by explicit choice."
    )
    max_body_bytes: int = Field(
        default=100 * 1024 * 1024,
        ge=1024,
        description="Largest request body of a caller with a key (spooled to disk, not memory).",
    )
    anonymous_max_body_bytes: int = Field(
        default=8 * 1024,
        ge=0,
        description="Largest request body of a caller without a valid key (service routes).",
    )
    max_requests_per_batch: int = Field(
        default=50_000, ge=1, description="Requests one batch may hold."
    )
    max_request_bytes: int = Field(
        default=1024 * 1024, ge=256, description="Largest single request line."
    )
    default_completion_window: str = Field(
        default="24h", description="Completion window when none is given."
    )

    # Limits per tenant, counted across API processes (rates in Redis, stored work in SQL).
    key_requests_per_second: int = Field(
        default=50, ge=1, description="Requests per second one API key may make."
    )
    auth_failures_per_minute: int = Field(
        default=30, ge=1, description="Failed authentications per minute from one client address."
    )
    tenant_max_streams: int = Field(
        default=32, ge=1, description="Event streams one tenant may hold open at once."
    )
    tenant_max_open_batches: int = Field(
        default=100, ge=1, description="Batches of one tenant that may be unfinished at once."
    )
    tenant_max_queued_requests: int = Field(
        default=1_000_000,
        ge=1,
        description="Requests one tenant may have in unfinished batches at once.",
    )
    tenant_max_stored_bytes: int = Field(
        default=10 * 1024**3, ge=0, description="Bytes of uploaded files one tenant may keep."
    )

    # Webhooks (delivered by the dispatcher process).
    webhook_allow_private: bool = Field(
        default=False,
        description="Allow webhook URLs on private, loopback and link-local addresses.",
    )
    webhook_timeout: float = Field(
        default=10.0, gt=0, description="Seconds one webhook delivery may take, all told."
    )
    webhook_concurrency: int = Field(
        default=8, ge=1, description="Webhook deliveries in flight at once."
    )
    webhook_retry_base_delay: float = Field(
        default=5.0, gt=0, description="First webhook retry delay in seconds (doubles)."
    )
    webhook_retry_max_delay: float = Field(
        default=3600.0, gt=0, description="Ceiling of the webhook retry delay in seconds."
    )
    webhook_retry_window: float = Field(
        default=86400.0, gt=0, description="Seconds a webhook event is retried before it fails."
    )

    @property
    def sql_url(self) -> str:
        """The database URL, defaulting to a SQLite file in the data folder."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'aivbatch.db').resolve()}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, read once from the environment."""
    return Settings()
