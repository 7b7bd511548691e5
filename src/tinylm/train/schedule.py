"""Learning-rate schedules as restartable cycles.

A schedule is a shape over one *cycle*; `restart(at_step, length)` begins a new cycle, which is
how FORGETTER's episodes (linear decay to zero in each) and cyclic LR are expressed. The state is
two integers, so checkpoints stay exact.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from tinylm.errors import UserError

SHAPES = ("linear", "cosine", "constant")


@dataclass
class Schedule:
    shape: str = "linear"        # linear to zero (FORGETTER, HF Trainer default), cosine, constant
    warmup: int = 0              # steps of linear warmup at the start of every cycle
    min_ratio: float = 0.0       # floor as a fraction of the peak (cosine/linear end here)
    cycle_start: int = 0
    cycle_length: int = 1

    def __post_init__(self):
        if self.shape not in SHAPES:
            raise UserError(f"unknown schedule {self.shape!r}: choose one of {', '.join(SHAPES)}")

    def factor(self, step: int) -> float:
        """Multiplier of the peak learning rate at global optimizer step `step` (0-based)."""
        t = step - self.cycle_start
        if self.warmup and t < self.warmup:
            return (t + 1) / self.warmup
        if self.shape == "constant":
            return 1.0
        span = max(1, self.cycle_length - self.warmup)
        progress = min(1.0, max(0.0, (t - self.warmup) / span))
        if self.shape == "linear":
            shape = 1.0 - progress
        else:
            shape = 0.5 * (1.0 + math.cos(math.pi * progress))
        return self.min_ratio + (1.0 - self.min_ratio) * shape

    def restart(self, at_step: int, length: int) -> None:
        self.cycle_start, self.cycle_length = int(at_step), max(1, int(length))

    def state_dict(self) -> dict:
        return {"cycle_start": self.cycle_start, "cycle_length": self.cycle_length}

    def load_state_dict(self, state: dict) -> None:
        self.cycle_start, self.cycle_length = int(state["cycle_start"]), int(state["cycle_length"])
