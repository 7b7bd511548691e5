"""The events a method can react to, in the order the loop emits them.

    check           once, when the run is built (fresh or resumed), before anything is written into the run
                    directory: refuse options that do not fit this run (its model, length, neighbours) with a
                    UserError, so a mistake leaves no config.yaml or metrics behind; must change nothing
    start           once, after the model, optimizer and data exist (also after a resume)
    step_start      before each optimizer step's micro-batches
    soft_targets    per micro-batch, before the objective: may return `SoftTargets`, a distribution per
                    position for the model to fit beside the labels (distillation's teachers); the
                    objective computes their KL term fused with its cross-entropy (losses/soft_targets.py)
                    and hands the two back through `on_soft_loss(run, ce, kl)` (detached, for logging)
    loss            per micro-batch: may return an extra loss term (a tensor) to add; a method
                    that overrides `on_loss` makes the loop return the logits from the compiled
                    objective (they cost memory and time, so other runs never get them)
    after_backward  gradients of the whole step are in place (before clipping)
    step_end        after the optimizer and schedule stepped; counters already advanced
    eval            validation metrics in hand
    stop            once, at the end
Logging: `log_metrics()` returns scalars to add to each logged training record (e.g. distill's CE
and KL terms, averaged since the previous log line); called only on logging steps.
State: `state_dict()` / `load_state_dict()` must hold everything the method needs to resume
exactly (JSON-able values and tensors); the generic tests check train -> resume -> identical.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from tinylm.errors import UserError

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from tinylm.train.run import Run
    from tinylm.losses.soft_targets import SoftTargets


@dataclass
class MethodConfig:
    """Base for a method's typed options (recipe: `methods: [{name: {option: value}}]`)."""


class Method:
    name: ClassVar[str] = "method"
    Config: ClassVar[type] = MethodConfig

    def __init__(self, config: MethodConfig):
        self.config = config

    def check(self, run: "Run") -> None: ...
    def on_start(self, run: "Run") -> None: ...
    def on_step_start(self, run: "Run") -> None: ...
    def soft_targets(self, run: "Run", batch: dict) -> "SoftTargets | None":
        return None
    def on_soft_loss(self, run: "Run", ce: "torch.Tensor", kl: "torch.Tensor") -> None: ...
    def on_loss(self, run: "Run", batch: dict, logits: "torch.Tensor", loss: "torch.Tensor") -> "torch.Tensor | None":
        return None
    def on_after_backward(self, run: "Run") -> None: ...
    def on_step_end(self, run: "Run") -> None: ...
    def on_eval(self, run: "Run", metrics: dict) -> None: ...
    def on_stop(self, run: "Run") -> None: ...
    def log_metrics(self) -> dict:
        return {}

    @property
    def gives_soft_targets(self) -> bool:
        """Whether `soft_targets` is overridden (at most one method of a run may)."""
        return type(self).soft_targets is not Method.soft_targets

    @property
    def uses_logits(self) -> bool:
        """Whether `on_loss` is overridden: only then does the loop keep the logits for it."""
        return type(self).on_loss is not Method.on_loss

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


def check_one_soft_target_source(methods: list[Method]) -> None:
    """The objective fits one target distribution: two methods giving soft targets are a user error."""
    givers = [m.name for m in methods if m.gives_soft_targets]
    if len(givers) > 1:
        raise UserError(f"methods {givers[0]} and {givers[1]} both give the model soft targets to fit: keep one "
                        "of them (or merge their teachers into one distill)")
