"""grow — incremental layer-wise training: start shallow, add blocks stage by stage.

What: the recipe's model is the *final* model (L blocks). At the start the model is cut to the
first stage's blocks; each of `stages` (S) stages then adds its blocks (m = L // S each, the
remainder placed explicitly: see `remainder`) and trains in two phases: phase 1
(`phase1_fraction` of the stage) trains only the new blocks — plus `phase1_also`, by default the
embeddings, final norm and output layer, which the paper's code lets train — with the older
blocks frozen; phase 2 trains everything built so far. After the last stage, whatever is left of
`train.duration` is the *continual* phase: everything trains (`continual_optimizer: reset` starts
it with a fresh AdamW, as the paper's code does). Stage lengths: `stage` (each), or `incremental`
(all stages together, split evenly), or by default the whole run split evenly (no continual
phase). Across a growth the optimizer is kept by default — surviving parameters keep their AdamW
moments and step counts (frozen ones too: they are parked while frozen), new blocks start fresh —
or `optimizer: reset` starts a fresh AdamW at every stage. `schedule: stage` restarts the recipe's
learning-rate schedule at every stage and at the continual phase; `run` (default) keeps one
schedule over the whole run.

When it helps: the paper finds that it does not, at equal compute: the early stages are cheap
but the model then needs long continual training, and at the baseline's compute it is still
behind (validation loss and HellaSwag). Use it to test that claim at your scale, or as the
baseline of a growth method of your own. Compare runs at equal FLOPs: `tinylm compare RUNS --x flops`.

Citation: Li, Fung & Huang, "On the effectiveness of incremental training of large language
models" (2024), GPT-2 124M, S = 4, 8, 12 stages over 10,000 steps, then continual training. Two
deliberate differences from their code: it gives every stage `L // S` blocks and drops the
remainder, so with S = 8 and L = 12 (`12 // 8 = 1`) only 8 of the 12 layers were ever used — here
all L train; and their not-yet-used blocks are built (with the full model's init) from the start,
whereas here new blocks are drawn fresh when their stage begins (the GPT-2 flavour scales residual
projections by the depth at that moment).

Left out: the paper's untested idea of growing context length and batch size per stage (the data
pipeline and the FLOPs/token count are fixed per run; doing it honestly needs a sampler that
changes shape mid-run).

Recipe:
    methods: [{grow: {stages: 4, incremental: 10k steps, continual_optimizer: reset}}]
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from tinylm.errors import UserError
from tinylm.methods.base import Method, MethodConfig
from tinylm.methods.grow_plan import REMAINDERS, ROLES, build_plan, split_steps, stage_layout, trains
from tinylm.methods.options import duration, number
from tinylm.methods.registry import register
from tinylm.duration import parse_duration

log = logging.getLogger(__name__)

CHOICES = {"optimizer": ("keep", "reset"), "continual_optimizer": ("keep", "reset"), "schedule": ("run", "stage"),
           "remainder": REMAINDERS}


@dataclass
class GrowConfig(MethodConfig):
    stages: int = 2                   # S; the paper: 4, 8, 12 (of L = 12); 2 fits any model of 2+ layers
    stage: str | None = None          # length of each stage (`625 steps`, `61M tokens`) ...
    incremental: str | None = None    # ... or of all stages together, split evenly (paper: T_inc = 10k steps)
    phase1_fraction: float = 0.5      # phase 1's share of a stage (paper: half)
    phase1_also: list = field(default_factory=lambda: list(ROLES))  # trained in phase 1 besides the new blocks
    remainder: str = "last"           # L mod S extra blocks: the last stage adds them | spread over the first stages
    optimizer: str = "keep"           # at a growth: keep AdamW state (new blocks fresh) | reset it all
    continual_optimizer: str = "keep"  # at the continual phase: keep | reset (the paper's code: a fresh AdamW)
    schedule: str = "run"             # run: one LR schedule | stage: restart it per stage and for continual

    def __post_init__(self):
        self.stages = number(self.stages, "stages", int)
        if self.stages < 1:
            raise ValueError(f"stages is {self.stages}: use 1 or more (each stage adds at least one layer)")
        if self.stage is not None and self.incremental is not None:
            raise ValueError("give `stage` (each stage's length) or `incremental` (all stages together), not both")
        for key in ("stage", "incremental"):
            if getattr(self, key) is not None:
                setattr(self, key, str(getattr(self, key)))
                duration(getattr(self, key), key)
        self.phase1_fraction = number(self.phase1_fraction, "phase1_fraction")
        if not 0 < self.phase1_fraction < 1:
            raise ValueError(f"phase1_fraction is {self.phase1_fraction:g}: phase 1's share of a stage must be "
                             "between 0 and 1 (the paper: 0.5)")
        if isinstance(self.phase1_also, str):
            self.phase1_also = [self.phase1_also]
        if not isinstance(self.phase1_also, list) or any(r not in ROLES for r in self.phase1_also):
            raise ValueError(f"phase1_also is {self.phase1_also!r}: a list of {', '.join(ROLES)} (or [] for the "
                             "new blocks alone)")
        for key, valid in CHOICES.items():
            if getattr(self, key) not in valid:
                raise ValueError(f"{key} is {getattr(self, key)!r}: choose one of {', '.join(valid)}")


@register
class Grow(Method):
    name = "grow"
    Config = GrowConfig

    def __init__(self, config: GrowConfig):
        super().__init__(config)
        self.begun = False
        self.plan: list[dict] = []
        self.next = 0  # index of the next segment to begin

    # -- events ----------------------------------------------------------------------------------
    def check(self, run) -> None:
        if not self.begun:  # resumed: the plan was checked when it was laid
            self._plan(run)

    def _plan(self, run) -> tuple[list[int], list[dict]]:
        """The stage layout and the curriculum of this run; a plan that does not fit it is refused."""
        self._check_neighbours(run)
        cfg = self.config
        layout = stage_layout(run.model.config.n_layers, cfg.stages, cfg.remainder)
        lengths = self._lengths(run)
        if run.step + sum(lengths) > run.total_steps:
            raise UserError(f"grow: {cfg.stages} stages take {sum(lengths)} steps but the run has "
                            f"{run.total_steps - run.step}: shorten `stage`/`incremental` or lengthen train.duration")
        return layout, build_plan(layout, lengths, cfg.phase1_fraction, run.step, run.total_steps)

    def on_start(self, run) -> None:
        if self.begun:  # resumed: depth, frozen set and optimizer state come from the checkpoint
            return
        layout, self.plan = self._plan(run)
        self.begun = True
        if layout[0] < run.model.config.n_layers:
            run.truncate(layout[0])
        self._advance(run)

    def on_step_start(self, run) -> None:
        self._advance(run)

    def log_metrics(self) -> dict:
        current = self.plan[self.next - 1] if self.next else None
        if current is None:
            return {}
        phase = {"phase1": 1, "phase2": 2, "continual": 0}[current["kind"]]
        return {"grow_stage": current["stage"], "grow_phase": phase, "layers": current["depth"]}

    # -- the curriculum ----------------------------------------------------------------------------
    def _advance(self, run) -> None:
        """Begin every segment whose first step is now (between the previous step and this one)."""
        while self.next < len(self.plan) and self.plan[self.next]["start"] <= run.step:
            self._begin(run, self.plan[self.next])
            self.next += 1

    def _begin(self, run, segment: dict) -> None:
        cfg, kind = self.config, segment["kind"]
        if kind == "phase1":
            added = segment["depth"] - run.model.config.n_layers
            if added > 0:
                run.grow(added)
                if cfg.optimizer == "reset":
                    run.reset_optimizer()
            tied = run.model.config.tie_embeddings
            run.set_trainable(lambda name, p: trains(name, segment, cfg.phase1_also, tied))
        elif kind == "phase2":
            run.set_trainable(lambda name, p: True)
        elif cfg.continual_optimizer == "reset":
            run.reset_optimizer()
        if cfg.schedule == "stage" and kind != "phase2":
            stage_end = segment["end"] if kind == "continual" else self.plan[self.next + 1]["end"]
            run.restart_schedule(stage_end - segment["start"])
        run.log_event("grow_phase", stage=segment["stage"], phase=kind, layers=segment["depth"],
                      new=segment["new"], until=segment["end"])

    def _lengths(self, run) -> list[int]:
        cfg = self.config
        store = getattr(run, "store", None)
        per_epoch = len(store.split("train")) if store is not None else None
        if cfg.stage is not None:
            return [parse_duration(cfg.stage).to_steps(run.tokens_per_step, per_epoch)] * cfg.stages
        if cfg.incremental is not None:
            total = parse_duration(cfg.incremental).to_steps(run.tokens_per_step, per_epoch)
        else:
            total = run.total_steps - run.step
        return split_steps(total, cfg.stages)

    def _check_neighbours(self, run) -> None:
        for other in run.methods:
            if other.name != "sleep":
                continue
            if other.config.policy == "paper":
                raise UserError("grow beside sleep's paper policy: a rollback to an episode before a growth cannot "
                                "undo the growth; use sleep `policy: light` or `policy: deep`")
            if self.config.schedule == "stage":
                raise UserError("grow `schedule: stage` and sleep both restart the learning-rate schedule: "
                                "use grow `schedule: run` beside sleep")

    # -- state -------------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {"begun": self.begun, "plan": self.plan, "next": self.next}

    def load_state_dict(self, state: dict) -> None:
        self.begun, self.plan, self.next = bool(state["begun"]), list(state["plan"]), int(state["next"])
