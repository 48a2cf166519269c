"""The live view of a batch: progress bars by state, throughput, ETA, a running job's text."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn
from rich.text import Text

from models.states import ENDED_BATCH_STATES, BatchStatus, JobStatus

STATE_STYLES = {
    JobStatus.SUCCEEDED: "green",
    JobStatus.RUNNING: "cyan",
    JobStatus.QUEUED: "white",
    JobStatus.FAILED: "red",
    JobStatus.CANCELLED: "yellow",
    JobStatus.EXPIRED: "magenta",
}
RATE_WINDOW_SECONDS = 10.0
LIVE_CHARS = 480


@dataclass
class LiveText:
    """The text of one job's current attempt, as it streams."""

    custom_id: str
    attempt: int = 0
    text: str = ""
    ended: str | None = None

    def add(self, attempt: int, text: str) -> None:
        """Append a chunk; a higher attempt starts over, a lower one is a stale write."""
        if attempt > self.attempt:
            self.attempt, self.text, self.ended = attempt, "", None
        if attempt == self.attempt:
            self.text += text


@dataclass
class BatchView:
    """What is known of a batch, and how to draw it."""

    batch_id: str
    total: int = 0
    status: str = BatchStatus.IN_PROGRESS
    counts: dict[str, int] = field(default_factory=dict)
    live: LiveText | None = None
    started: float = field(default_factory=time.monotonic)
    samples: deque[tuple[float, int]] = field(default_factory=deque)

    def __post_init__(self) -> None:
        self._bars = Progress(
            TextColumn("{task.description:>10}"),
            BarColumn(bar_width=None),
            MofNCompleteColumn(),
            expand=True,
        )
        self._tasks: dict[str, TaskID] = {
            state: self._bars.add_task(f"[{style}]{state}", total=1)
            for state, style in STATE_STYLES.items()
        }

    @property
    def finished(self) -> int:
        """Jobs in a terminal state."""
        return sum(self.counts.get(s, 0) for s in STATE_STYLES if s not in ("queued", "running"))

    @property
    def done(self) -> bool:
        """Whether the batch has ended."""
        return self.status in ENDED_BATCH_STATES

    def update(self, status: str, total: int, counts: dict[str, int]) -> None:
        """Take the batch's status and counts by state."""
        self.status, self.total = status, total
        self.counts = {s: int(counts.get(s, 0)) for s in STATE_STYLES}
        now = time.monotonic()
        self.samples.append((now, self.finished))
        while self.samples and now - self.samples[0][0] > RATE_WINDOW_SECONDS:
            self.samples.popleft()

    def rate(self) -> float:
        """Jobs finished per second, over the last few seconds."""
        if len(self.samples) < 2:
            return 0.0
        (t0, n0), (t1, n1) = self.samples[0], self.samples[-1]
        return (n1 - n0) / (t1 - t0) if t1 > t0 else 0.0

    def summary(self) -> Text:
        """One line: finished, throughput, ETA, elapsed."""
        elapsed = time.monotonic() - self.started
        rate = self.rate()
        left = self.total - self.finished
        if self.done:
            eta = "done"
        elif rate > 0:
            eta = f"ETA {left / rate:.0f}s"
        else:
            eta = "ETA —"
        return Text(
            f"{self.batch_id}  {self.status}  {self.finished}/{self.total} finished"
            f" · {rate:.1f} jobs/s · {eta} · {elapsed:.1f}s elapsed"
        )

    def __rich__(self) -> RenderableType:
        for state, task in self._tasks.items():
            self._bars.update(task, total=max(self.total, 1), completed=self.counts.get(state, 0))
        parts: list[RenderableType] = [self.summary(), self._bars]
        if self.live is not None:
            tail = self.live.text[-LIVE_CHARS:]
            if self.live.attempt == 0:  # nothing of it has arrived yet
                title = f"{self.live.custom_id} · {self.live.ended or 'waiting for its text'}"
            else:
                state = self.live.ended or "streaming"
                title = f"{self.live.custom_id} · attempt {self.live.attempt} · {state}"
            parts.append(Panel(Text(tail or "…"), title=title, title_align="left"))
        return Group(*parts)
