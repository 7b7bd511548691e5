"""Curricula are data: durations are written as `10k steps`, `61M tokens` or `3 epochs`."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from tinylm.errors import UserError

_SUFFIX = {"": 1, "k": 1_000, "m": 1_000_000, "b": 1_000_000_000, "g": 1_000_000_000}
_UNITS = {"step": "steps", "steps": "steps", "token": "tokens", "tokens": "tokens",
          "epoch": "epochs", "epochs": "epochs"}
_PATTERN = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:e[0-9]+)?)\s*([kmbg]?)\s*([a-z]*)\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class Duration:
    amount: float
    unit: str  # "steps" | "tokens" | "epochs"

    def to_steps(self, tokens_per_step: int, tokens_per_epoch: int | None = None) -> int:
        """Whole optimizer steps this duration covers (at least one)."""
        if self.unit == "steps":
            return max(1, round(self.amount))
        if self.unit == "tokens":
            return max(1, round(self.amount / tokens_per_step))
        if tokens_per_epoch is None:
            raise UserError("a duration in epochs needs a token store to count its tokens")
        return max(1, round(self.amount * tokens_per_epoch / tokens_per_step))

    def __str__(self) -> str:
        return f"{self.amount:g} {self.unit}"


def parse_duration(value, default_unit: str = "steps") -> Duration:
    """`1000`, `10k steps`, `61M tokens`, `1.5 epochs` -> Duration. Bare numbers are steps."""
    if isinstance(value, Duration):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return _positive(Duration(float(value), default_unit), value)
    m = _PATTERN.match(str(value))
    unit = _UNITS.get(m.group(3).lower()) if m else None
    if m and (unit or not m.group(3)):
        return _positive(Duration(float(m.group(1)) * _SUFFIX[m.group(2).lower()], unit or default_unit), value)
    raise UserError(f"cannot read duration {value!r}: write e.g. `10k steps`, `61M tokens` or `2 epochs`")


def _positive(duration: Duration, value) -> Duration:
    """Every duration is a length of training: zero (which trained one step) or an overflow is a mistake."""
    if not (math.isfinite(duration.amount) and duration.amount > 0):
        raise UserError(f"duration {value!r} is not a positive finite length: write e.g. `10k steps`, `61M tokens` "
                        "or `2 epochs`")
    return duration
