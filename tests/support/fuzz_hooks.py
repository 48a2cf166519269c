"""What the schema-driven fuzz run is told beyond the OpenAPI document.

Loaded by ``st run`` (``SCHEMATHESIS_HOOKS=tests.support.fuzz_hooks``). Four rules of the
API cannot be said in JSON Schema, and the document says them in words instead: a batch
uses each custom_id once, an uploaded file is JSONL of batch requests, a request's model
must be served by an upstream that can carry it (the deployment's routing table; the API
under test has the default one, the Aivvm upstream), and a webhook URL is an http(s) URL
whose host resolves. So cases that are valid by the schema but break one of these are not
sent as valid ones: a repeated custom_id or a request the routing refuses is left out of the
valid cases, a valid upload gets real lines, and a valid webhook a loopback URL (the fuzzed
API allows private addresses, and nothing delivers there). Every other case, and every
invalid one, is sent as generated (tests/test_api_limits.py and tests/test_abuse.py cover
repeats, bad files and refused URLs on their own).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from typing import Any

import schemathesis

from models.requests import Defaults, InvalidRequest, UnsupportedRequest, request_from
from models.routing import Routing
from models.settings import Settings
from models.upstreams import default_upstreams

_ROUTING = Routing(default_upstreams(Settings()))

_uploads = itertools.count()

# schemathesis attaches ``apply_to`` to its hook decorator at run time, out of mypy's sight.
_apply_to: Callable[..., Callable[[Callable[..., Any]], Callable[..., Any]]]
_apply_to = schemathesis.hook.apply_to  # type: ignore[attr-defined]


def _positive(case: Any) -> bool:
    """Whether every part of the case was generated valid by the schema."""
    meta = case.meta
    if meta is None:
        return True
    parts = [meta.generation.mode, *(c.mode for c in meta.components.values())]
    return all(mode.is_positive for mode in parts)


@_apply_to(method="POST", path="/v1/batches")
def filter_case(_context: Any, case: Any) -> bool:
    """Valid inline batches use each custom_id once."""
    body = case.body
    if not _positive(case) or not isinstance(body, dict):
        return True
    requests = body.get("requests")
    if not isinstance(requests, list):
        return True
    ids = [r.get("custom_id") for r in requests if isinstance(r, dict)]
    return len(ids) == len(set(ids)) and all(_routable(r, body) for r in requests)


def _routable(request: Any, body: dict[str, Any]) -> bool:
    """Whether the default routing table serves the request (other problems are the API's
    to find)."""
    endpoint = body.get("endpoint") or "/v1/chat/completions"
    defaults = Defaults(model=body.get("model") or Defaults().model, endpoint=endpoint)
    try:
        request_from(request, defaults, _ROUTING)
    except UnsupportedRequest:
        return False
    except InvalidRequest:
        return True
    return True


@schemathesis.hook
def before_call(_context: Any, case: Any, _kwargs: dict[str, Any]) -> None:
    """Valid uploads hold batch requests, one per line; valid webhooks name a URL that
    resolves (here, a closed port on loopback)."""
    # Here rather than in map_case: only now does the case know which parts are invalid.
    if not _positive(case) or not isinstance(case.body, dict):
        return
    route = (case.method.upper(), case.operation.path)
    if route == ("POST", "/v1/files") and "file" in case.body:
        line = {
            "custom_id": f"fuzz-{next(_uploads)}",
            "messages": [{"role": "user", "content": "Привет! Как дела?"}],
        }
        case.body = {**case.body, "file": json.dumps(line, ensure_ascii=False)}
    elif route == ("POST", "/v1/webhooks") and "url" in case.body:
        case.body = {**case.body, "url": f"http://127.0.0.1:9/fuzz-{next(_uploads)}"}
