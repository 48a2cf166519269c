"""The provider of each upstream, built once per worker process from the routing table.

``KINDS`` maps an upstream's ``kind`` to the module that speaks its protocol; adding a
protocol is adding a provider module and a line here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from models.routing import Routing
from models.settings import Settings
from models.upstreams import Upstream
from worker.providers.aivvm_upstream import AivvmUpstream
from worker.providers.interface import Provider
from worker.providers.openai import OpenAIProvider


def _aivvm(upstream: Upstream, key: str) -> Provider:
    return AivvmUpstream(upstream.name, base_url=upstream.base_url, api_key=key)


def _openai(upstream: Upstream, key: str) -> Provider:
    return OpenAIProvider(
        upstream.name, base_url=upstream.base_url, api_key=key, headers=dict(upstream.headers)
    )


KINDS: dict[str, Callable[[Upstream, str], Provider]] = {"aivvm": _aivvm, "openai": _openai}


def build(routing: Routing, settings: Settings, environ: Mapping[str, str]) -> dict[str, Provider]:
    """A provider per upstream; keys come from the variables the routing file names."""
    return {u.name: KINDS[u.kind](u, u.key(settings, environ)) for u in routing}


def missing_keys(routing: Routing, environ: Mapping[str, str]) -> list[str]:
    """The ``api_key_env`` variables the routing file names that are not set."""
    return [u.api_key_env for u in routing if u.api_key_env and not environ.get(u.api_key_env)]
