"""The demo's sample batch: a dozen prompts, the seed's Russian greeting first."""

from __future__ import annotations

from typing import Any

# (prompt, per-request options): a few set their own options, to show that requests may.
PROMPTS: list[tuple[str, dict[str, Any]]] = [
    ("Привет! Как дела?", {}),
    ("What is a batch completion service good for?", {}),
    ("Write a haiku about message queues.", {"temperature": 1.2}),
    ("Explain Redis streams in two sentences.", {}),
    ("Name three uses of SQLite.", {"system_message": "Answer as a numbered list."}),
    ("Qu'est-ce qu'un agent de messages ?", {}),
    ("Summarise the CAP theorem for a new engineer.", {}),
    ("¿Por qué el cielo es azul?", {}),
    ("Give a one-line definition of idempotency.", {"model": "gpt-4"}),
    ("What happens when a worker dies mid-task?", {}),
    ("Translate 'good morning' into Japanese.", {}),
    ("Why are retries with backoff better than immediate retries?", {}),
]
RUSSIAN_ID = "q-01"


def sample_requests(n: int) -> list[dict[str, Any]]:
    """``n`` native requests cycling through the prompts (custom_ids q-01, q-02, …)."""
    width = max(2, len(str(n)))
    made = []
    for i in range(n):
        prompt, options = PROMPTS[i % len(PROMPTS)]
        made.append(
            {
                "custom_id": f"q-{i + 1:0{width}d}",
                "messages": [{"role": "user", "content": prompt}],
                **options,
            }
        )
    return made
