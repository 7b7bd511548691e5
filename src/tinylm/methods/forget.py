"""forget — active forgetting: re-draw the token embeddings every k updates.

What: every `every` (k) optimizer steps the input embeddings (and the output layer, when it is
tied to them) are drawn afresh with the model's own init — the padding row stays zero — and the
AdamW moments and step counts of exactly those parameters are reset; the rest of the model and of
the optimizer go on untouched. Resetting the optimizer too matters: GAFF found that Adam's moving
averages otherwise restore the old embeddings almost at once. Options: a window of resets
(`start`/`end`, in steps), an embedding-only learning-rate schedule that warms up and decays
within every k-step window (Chen et al.'s compressed schedule, applied on top of the run's
schedule), and a cyclic schedule for the whole model that restarts every k (GAFF's nanoGPT runs).
A reset happens between step k·n and the next one, so a run never ends on freshly drawn
embeddings.

When it helps: pretraining a body that adapts quickly to new embeddings (a new language, a new
tokenizer) in few updates; "plasticity".

Citations: Chen et al., "Improving Language Plasticity via Pretraining with Active Forgetting"
(NeurIPS 2023; k = 1000); Folkerts et al., "GAFF: GPT-NeoX Active Forgetting Functionality" (k = 250
in nanoGPT, with a cyclic cosine schedule). For checkpoints of other stacks, the same reset is
`tinylm surgery reset-embeddings CKPT --out CKPT2`.

Recipe:
    methods: [{forget: {every: 250, cyclic: true}}]
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

from tinylm.errors import UserError
from tinylm.methods.base import Method, MethodConfig
from tinylm.methods.embedding_params import select_embedding_params
from tinylm.methods.options import number
from tinylm.methods.registry import register

log = logging.getLogger(__name__)

GAFF_K = 250


@dataclass
class ForgetConfig(MethodConfig):
    every: int | None = None         # k, updates between resets; unset = 250 (GAFF's nanoGPT runs)
    start: int = 0                   # no reset before this step
    end: int | None = None           # no reset after this step (unset: until the run's end)
    params: list = field(default_factory=lambda: ["embeddings"])  # embeddings | output | positions | names
    embedding_schedule: bool = False  # compressed warmup + decay of the reset params' LR within every k
    embedding_warmup: float = 0.1    # its warmup, as a fraction of k
    cyclic: bool = False             # restart the whole model's LR schedule every k (GAFF)

    def __post_init__(self):
        if self.every is not None:
            self.every = number(self.every, "every", int)
            if self.every < 1:
                raise ValueError(f"every is {self.every}: k counts optimizer steps between resets, use 1 or more")
        self.start = number(self.start, "start", int)
        if self.start < 0:
            raise ValueError(f"start is {self.start}: use a step >= 0")
        if self.end is not None:
            self.end = number(self.end, "end", int)
            if self.end < self.start:
                raise ValueError(f"end ({self.end}) is before start ({self.start}): no reset would happen")
        if isinstance(self.params, str):
            self.params = [self.params]
        if not isinstance(self.params, list) or not self.params:
            raise ValueError("params must be a non-empty list, e.g. [embeddings] or [embeddings, output]")
        self.embedding_warmup = number(self.embedding_warmup, "embedding_warmup")
        if not 0 <= self.embedding_warmup < 1:
            raise ValueError(f"embedding_warmup is {self.embedding_warmup:g}: a fraction of k in [0, 1)")
        for key in ("embedding_schedule", "cyclic"):
            if not isinstance(getattr(self, key), bool):
                raise ValueError(f"{key} must be true or false, not {getattr(self, key)!r}")

    @property
    def k(self) -> int:
        return GAFF_K if self.every is None else self.every


@register
class Forget(Method):
    name = "forget"
    Config = ForgetConfig

    def __init__(self, config: ForgetConfig):
        super().__init__(config)
        self.names: list[str] = []
        self.resets = 0       # resets done so far
        self.last_reset = -1  # the step of the latest one

    def check(self, run) -> None:
        cfg, k = self.config, self.config.k
        model = run.model
        select_embedding_params([n for n, _ in model.named_parameters()], cfg.params, tied=model.lm_head is None)
        if cfg.cyclic and any(m.name == "sleep" for m in run.methods):
            raise UserError("forget: `cyclic: true` and sleep both restart the learning-rate schedule (every k "
                            "and every episode): drop `cyclic` when sleeping")
        if cfg.cyclic and run.recipe.train.warmup >= k:
            raise UserError(f"forget: `cyclic` restarts the schedule every k = {k} steps but train.warmup is "
                            f"{run.recipe.train.warmup}: the learning rate would never leave its warmup; set "
                            f"train.warmup below {k}")
        if self._next_reset(k - 1, run.total_steps) is None:
            explicit = cfg.every is not None or cfg.start or cfg.end is not None
            message = (f"forget: k = {k} (every) with start {cfg.start}"
                       + (f", end {cfg.end}" if cfg.end is not None else "")
                       + f" leaves no reset inside this {run.total_steps}-step run: choose every < "
                       f"{run.total_steps} and a window inside the run")
            if explicit:
                raise UserError(message)
            log.warning("%s (k is the default; nothing will be forgotten)", message)

    def on_start(self, run) -> None:
        model = run.model
        self.names = select_embedding_params([n for n, _ in model.named_parameters()], self.config.params,
                                             tied=model.lm_head is None)

    def on_step_start(self, run) -> None:
        """Between step k·n and the next: reset, restart cycles, set this step's embedding LR."""
        cfg, k, step = self.config, self.config.k, run.step
        if cfg.cyclic and step % k == 0:
            run.restart_schedule(k)
        if self._is_reset(step, run.total_steps) and self.last_reset != step:
            run.reinit(self.names)  # the model's own init; a padding row is drawn as zero
            run.reset_optimizer(self.names)
            self.resets, self.last_reset = self.resets + 1, step
        if cfg.embedding_schedule:
            run.set_lr_scale(self.names, self._embedding_scale(step, run.total_steps), log=False)

    # -- when ------------------------------------------------------------------------------------
    def _is_reset(self, step: int, total: int) -> bool:
        cfg = self.config
        return (step > 0 and step % cfg.k == 0 and step >= cfg.start and step < total
                and (cfg.end is None or step <= cfg.end))

    def _next_reset(self, step: int, total: int) -> int | None:
        """The first reset strictly after `step`, or None."""
        k = self.config.k
        candidate = max(step + 1, self.config.start, k)
        candidate = math.ceil(candidate / k) * k
        return candidate if self._is_reset(candidate, total) else None

    def _embedding_scale(self, step: int, total: int) -> float:
        """Warm up then decay linearly within each k-window that ends in a reset; 1.0 elsewhere."""
        k = self.config.k
        window_end = (step // k + 1) * k
        if not self._is_reset(window_end, total):
            return 1.0
        t = step - (window_end - k)
        warmup = max(1, round(self.config.embedding_warmup * k))
        if t < warmup:
            return (t + 1) / warmup
        return 1.0 - (t - warmup) / max(1, k - warmup)

    def state_dict(self) -> dict:
        return {"resets": self.resets, "last_reset": self.last_reset}

    def load_state_dict(self, state: dict) -> None:
        self.resets, self.last_reset = int(state["resets"]), int(state["last_reset"])
