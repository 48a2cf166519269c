"""How batch objects look on a terminal: one batch in detail, many in a table."""

from __future__ import annotations

from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from cli.common import when
from cli.view import STATE_STYLES
from models.states import BATCH_TIMESTAMPS, UNSUCCESSFUL_JOB_STATES

STATUS_STYLES = {
    "completed": "green",
    "in_progress": "cyan",
    "finalizing": "cyan",
    "validating": "cyan",
    "cancelling": "yellow",
    "cancelled": "yellow",
    "expired": "magenta",
    "failed": "red",
}


def status_text(status: str) -> Text:
    """A batch status, coloured."""
    return Text(status, style=STATUS_STYLES.get(status, ""))


def batch_detail(batch: dict[str, Any]) -> RenderableType:
    """One batch: status, counts by state, timestamps, usage, metadata."""
    head = Text.assemble(Text(f"{batch['id']}  ", style="bold"), status_text(batch["status"]))
    counts = Table(title="jobs by state", title_justify="left", show_header=False, box=None)
    counts.add_column("state")
    counts.add_column("jobs", justify="right")
    by_state: dict[str, int] = batch.get("counts") or {}
    for state, style in STATE_STYLES.items():
        counts.add_row(Text(state, style=style), str(by_state.get(state, 0)))
    total = (batch.get("request_counts") or {}).get("total", sum(by_state.values()))
    counts.add_row(Text("total", style="bold"), str(total))
    times = Table(title="timestamps", title_justify="left", show_header=False, box=None)
    times.add_column("event")
    times.add_column("at")
    for name in BATCH_TIMESTAMPS:
        if batch.get(name) is not None:
            times.add_row(name.removesuffix("_at"), when(batch[name]))
    usage: dict[str, Any] = batch.get("usage") or {}
    extra = [
        f"usage: {usage.get('input_tokens', 0)} tokens in, {usage.get('output_tokens', 0)} out;"
        f" {usage.get('input_characters', 0)} characters in,"
        f" {usage.get('output_characters', 0)} out",
        f"completion window: {batch.get('completion_window', '—')}",
    ]
    if batch.get("metadata"):
        pairs = ", ".join(f"{k}={v}" for k, v in batch["metadata"].items())
        extra.append(f"metadata: {pairs}")
    for name in ("output_file_id", "error_file_id", "input_file_id"):
        if batch.get(name):
            extra.append(f"{name}: {batch[name]}")
    return Group(head, counts, times, *(Text(line) for line in extra))


def batch_list(batches: list[dict[str, Any]]) -> Table:
    """Several batches, one row each, narrow enough for 80 columns (`status` has the rest)."""
    table = Table(box=None, pad_edge=False, header_style="bold")
    table.add_column("id", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("created", no_wrap=True)
    table.add_column("done", justify="right", no_wrap=True)
    table.add_column("not ok", justify="right", no_wrap=True)
    for batch in batches:
        counts: dict[str, int] = batch.get("counts") or {}
        total = (batch.get("request_counts") or {}).get("total", sum(counts.values()))
        open_ = counts.get("queued", 0) + counts.get("running", 0)
        not_ok = sum(counts.get(s, 0) for s in UNSUCCESSFUL_JOB_STATES)
        table.add_row(
            batch["id"],
            status_text(batch["status"]),
            when(batch.get("created_at"), short=True),
            f"{total - open_}/{total}",
            str(not_ok),
        )
    return table


def outcome(batch: dict[str, Any]) -> str:
    """One line on how a batch ended."""
    counts: dict[str, int] = batch.get("counts") or {}
    parts = [f"{counts.get(s, 0)} {s}" for s in STATE_STYLES if counts.get(s, 0)]
    return f"batch {batch['id']} {batch['status']}: {', '.join(parts) or 'no jobs'}"
