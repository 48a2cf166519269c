"""The batch endpoints: what a batch may target, and which upstream kinds serve each."""

from __future__ import annotations

CHAT = "/v1/chat/completions"
COMPLETIONS = "/v1/completions"
EMBEDDINGS = "/v1/embeddings"
RESPONSES = "/v1/responses"

ENDPOINTS = (CHAT, COMPLETIONS, EMBEDDINGS, RESPONSES)

# Upstream kinds and the endpoints their protocol can serve.
KIND_ENDPOINTS: dict[str, tuple[str, ...]] = {
    "aivvm": (CHAT,),
    "openai": ENDPOINTS,
}


def upstream_path(endpoint: str) -> str:
    """The endpoint's path under an OpenAI-compatible base URL (which ends in ``/v1``)."""
    return endpoint.removeprefix("/v1")
