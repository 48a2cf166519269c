"""What the schema-driven fuzz run is told beyond the OpenAPI document.

Loaded by ``st run`` (``SCHEMATHESIS_HOOKS=tests.support.fuzz_hooks``). Two rules of the
API cannot be said in JSON Schema, and the document says them in words instead: a batch
uses each custom_id once, and an uploaded file is JSONL of batch requests. So cases that
are valid by the schema but break one of these are not sent as valid ones: a repeated
custom_id is left out of the valid cases, and a valid upload gets real lines. Every other
case, and every invalid one, is sent as generated (tests/test_api_limits.py and
tests/test_abuse.py cover repeats and bad files on their own).
"""

from __future__ import annotations

import itertools
import json
from typing import Any

import schemathesis

_uploads = itertools.count()


def _positive(case: Any) -> bool:
    """Whether every part of the case was generated valid by the schema."""
    meta = case.meta
    if meta is None:
        return True
    parts = [meta.generation.mode, *(c.mode for c in meta.components.values())]
    return all(mode.is_positive for mode in parts)


@schemathesis.hook.apply_to(method="POST", path="/v1/batches")
def filter_case(_context: Any, case: Any) -> bool:
    """Valid inline batches use each custom_id once."""
    body = case.body
    if not _positive(case) or not isinstance(body, dict):
        return True
    requests = body.get("requests")
    if not isinstance(requests, list):
        return True
    ids = [r.get("custom_id") for r in requests if isinstance(r, dict)]
    return len(ids) == len(set(ids))


@schemathesis.hook.apply_to(method="POST", path="/v1/files")
def before_call(_context: Any, case: Any, _kwargs: dict[str, Any]) -> None:
    """A valid upload holds batch requests, one per line."""
    # Here rather than in map_case: only now does the case know which parts are invalid.
    if _positive(case) and isinstance(case.body, dict) and "file" in case.body:
        line = {
            "custom_id": f"fuzz-{next(_uploads)}",
            "messages": [{"role": "user", "content": "Привет! Как дела?"}],
        }
        case.body = {**case.body, "file": json.dumps(line, ensure_ascii=False)}
