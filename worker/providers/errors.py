"""What can go wrong talking to an upstream, as a tree callers can branch on.

    ProviderError
    ├── UnsupportedModel        (also a ValueError, as the seed raised)
    └── UpstreamError
        ├── UpstreamRefused     4xx: the upstream said no; retrying cannot help
        ├── RateLimited         429, carrying Retry-After
        ├── UpstreamUnavailable 5xx, 408, 409, refused connections, connect timeouts
        ├── NotAnAnswer         a 2xx whose body is an HTML page (an anti-bot wall)
        └── StreamInterrupted   the body stopped before its end, carrying what had arrived
            └── StreamStalled   no byte within the stall timeout

Every ``UpstreamError`` has a stable ``code`` (stored with failed jobs) and says whether
a later attempt can succeed (``retryable``); one raised for an HTTP error answer keeps the
upstream's error body as JSON (``body``, the key masked), for OpenAI-shaped error lines.
"""

from __future__ import annotations

from typing import Any, ClassVar


class ProviderError(Exception):
    """Root of every provider error."""

    code: ClassVar[str] = "provider_error"


class UnsupportedModel(ProviderError, ValueError):
    """The model is not in the provider's table."""

    code = "unsupported_model"

    def __init__(self, model: str) -> None:
        super().__init__(f"Model is not supported: {model}")
        self.model = model


class UpstreamError(ProviderError):
    """The upstream did not give a whole answer."""

    code = "upstream_error"
    retryable: ClassVar[bool] = False

    def __init__(self, message: str, *, status_code: int | None = None, body: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.body: dict[str, Any] | None = body


class UpstreamRefused(UpstreamError):
    """A 4xx answer: the request itself is refused; the upstream's message is kept."""

    code = "upstream_refused"


class RateLimited(UpstreamError):
    """A 429 answer; ``retry_after`` is the upstream's Retry-After in seconds, if it gave one."""

    code = "rate_limited"
    retryable = True

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None,
        status_code: int = 429,
        body: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message, status_code=status_code, body=body)
        self.retry_after = retry_after


class UpstreamUnavailable(UpstreamError):
    """A 5xx answer, or no connection could be made in time."""

    code = "upstream_unavailable"
    retryable = True


class NotAnAnswer(UpstreamError):
    """A 2xx answer that is an HTML page rather than the model's text."""

    code = "not_an_answer"
    retryable = True


class StreamInterrupted(UpstreamError):
    """The stream broke off mid-answer; ``partial_text`` is what had arrived."""

    code = "stream_interrupted"
    retryable = True

    def __init__(self, message: str, *, partial_text: str, status_code: int | None = 200) -> None:
        super().__init__(message, status_code=status_code)
        self.partial_text = partial_text

    @property
    def received_chars(self) -> int:
        """How many characters had arrived before the break."""
        return len(self.partial_text)


class StreamStalled(StreamInterrupted):
    """No byte arrived within the stall timeout."""

    code = "stream_stalled"
