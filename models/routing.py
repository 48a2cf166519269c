"""The routing table: which upstream serves a model, under which name, and what it can take.

The API refuses at submission what no upstream serves (listing what is served) and what the
serving upstream's protocol cannot carry; workers follow the same table, and the next
upstream of a model's ``fallback`` chain after a failure a retry may fix.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from fnmatch import fnmatchcase

from models.endpoints import KIND_ENDPOINTS
from models.settings import Settings
from models.upstreams import Upstream, load_upstreams

_GLOB = set("*?[")
# Models whose route is remembered: a batch names a few, checked once per request.
ROUTE_CACHE = 1024


@dataclass(frozen=True, slots=True)
class Route:
    """Where one requested model goes: the upstream, and the upstream's name for the model."""

    upstream: Upstream
    model: str


class Routing:
    """The upstreams in the order of the file; the first that serves a model takes it."""

    def __init__(self, upstreams: Iterable[Upstream], source: str = "") -> None:
        self.upstreams = {u.name: u for u in upstreams}
        self.source = source
        self._routes: dict[str, Route | None] = {}

    @classmethod
    def from_settings(cls, settings: Settings) -> Routing:
        """The routing in force for these settings (ConfigError when the file is bad)."""
        upstreams, source = load_upstreams(settings)
        return cls(upstreams, source)

    def __iter__(self) -> Iterator[Upstream]:
        return iter(self.upstreams.values())

    def route(self, model: str) -> Route | None:
        """The upstream serving ``model``, or None when none does."""
        try:
            return self._routes[model]
        except KeyError:
            pass
        if len(self._routes) >= ROUTE_CACHE:
            self._routes.clear()  # models are the client's choice: the cache stays bounded
        found = self._routes[model] = self._find(model)
        return found

    def _find(self, model: str) -> Route | None:
        for upstream in self.upstreams.values():
            if serves(upstream, model):
                return Route(upstream, upstream.model_map.get(model, model))
        return None

    def on(self, name: str | None, model: str) -> Route | None:
        """``model`` on the upstream ``name`` (a fallback's own name for it); else its route."""
        upstream = self.upstreams.get(name or "")
        if upstream is None:
            return self.route(model)
        return Route(upstream, upstream.model_map.get(model, model))

    def chain(self, model: str) -> list[str]:
        """The upstreams a model's requests may go to: its own, then its fallbacks."""
        route = self.route(model)
        if route is None:
            return []
        return [route.upstream.name, *route.upstream.fallback]

    def after(self, model: str, current: str | None) -> str | None:
        """The upstream for the attempt after one on ``current`` failed and may be retried."""
        chain = self.chain(model)
        if not chain:
            return current
        if current not in chain:
            return chain[0]
        return chain[(chain.index(current) + 1) % len(chain)]

    def served(self) -> list[tuple[str, Upstream]]:
        """Every model name that can be listed (no glob), with its upstream, first one wins."""
        seen: dict[str, Upstream] = {}
        for upstream in self.upstreams.values():
            for name in [*upstream.model_map, *upstream.models]:
                if not (_GLOB & set(name)) and name not in seen:
                    seen[name] = upstream
        return list(seen.items())

    def served_text(self) -> str:
        """What is served, for an error message: names, then patterns."""
        names = [name for name, _ in self.served()]
        patterns = [p for u in self.upstreams.values() for p in u.models if _GLOB & set(p)]
        text = ", ".join(names) or "no model by name"
        if patterns:
            text += f"; and any model matching {', '.join(patterns)}"
        return text

    def endpoints_for(self, model: str) -> tuple[str, ...]:
        """The batch endpoints a model's upstream can serve."""
        route = self.route(model)
        return KIND_ENDPOINTS.get(route.upstream.kind, ()) if route else ()


def serves(upstream: Upstream, model: str) -> bool:
    """Whether ``upstream`` serves ``model``: a ``model_map`` name or a pattern matches."""
    if model in upstream.model_map:
        return True
    return any(fnmatchcase(model, pattern) for pattern in upstream.models)
