"""Usage of a job or a batch: tokens as the upstream counted them, characters as we did.

Tokens are what an OpenAI-compatible upstream reports in its ``usage`` (0 when it reports
none, as the Aivvm protocol never does); characters are counted here for every protocol.
The batch object shows both in OpenAI's ``usage`` shape, so the ``openai`` package's
``Batch`` type validates it, with the character counts beside the token counts.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

# The columns a job and a batch both have, one per figure (summed over a batch's jobs).
USAGE_COLUMNS = (
    "chars_in",
    "chars_out",
    "input_tokens",
    "output_tokens",
    "cached_tokens",
    "reasoning_tokens",
)


@dataclass(frozen=True, slots=True)
class Usage:
    """What one job, or a whole batch, used."""

    chars_in: int = 0
    chars_out: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0

    @classmethod
    def of(cls, row: Any) -> Usage:
        """The usage columns of a row (a Job, a Batch, or a result row with those names)."""
        return cls(*(int(getattr(row, name) or 0) for name in USAGE_COLUMNS))

    def openai(self) -> dict[str, Any]:
        """OpenAI's batch ``usage`` object, with the character counts added beside it."""
        return {
            "input_tokens": self.input_tokens,
            "input_tokens_details": {"cached_tokens": self.cached_tokens},
            "output_tokens": self.output_tokens,
            "output_tokens_details": {"reasoning_tokens": self.reasoning_tokens},
            "total_tokens": self.input_tokens + self.output_tokens,
            "input_characters": self.chars_in,
            "output_characters": self.chars_out,
        }


assert tuple(f.name for f in fields(Usage)) == USAGE_COLUMNS
