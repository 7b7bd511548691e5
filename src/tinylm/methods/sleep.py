"""sleep — FORGETTER's episodes, light sleeps and deep sleeps.

What: training is cut into *episodes* of a fixed length; the learning rate restarts in each
(linear decay to zero with the recipe's `schedule: linear`, as the paper). Between episodes the
model sleeps. A *light sleep* resets the optimizer (AdamW moments and step counts) and keeps the
weights; a *deep sleep* rebuilds the model from its weights alone (every other state fresh) and
resets the optimizer. The paper's policy (default): light sleeps while the validation loss
improves by more than `threshold`; when an episode does not, roll back to the best episode's
weights and switch to deep sleeps; stop when a deep sleep no longer improves (`patience` times),
leaving the best episode's weights in place. The run's `train.duration` stays the hard cap.

When it helps: small data trained past the point where one long linear-decay run overfits, with
"forgetful" hyperparameters (large weight decay and learning rate, small batches; Table 1).

Citation: Yamamoto & Miura, "FORGETTER with forgetful hyperparameters and recurring sleeps can
continue to learn beyond normal overfitting limits" (BabyLM 2025); notebooks in
keiji-miura/FORGETTER-BabyLM. Two deliberate differences from the notebooks: an episode is
compared with the *best* episode so far (the notebooks compare with the previous one, which after
a rollback is the worse episode), and the weights left at the end are the best episode's (the
notebooks stop with the worse model in memory and the best one on disk).

Recipe:
    methods: [{sleep: {episode: 10k steps, threshold: 0.0, patience: 1,
                       episodes: [{at: deep, lr: 5e-4}]}}]
Per-episode overrides: `at` is an episode number (1 = first; -1 = last, which needs
`max_episodes`), `last`, or `deep` (every episode that follows a deep sleep: the paper's
hand-tuned final phase); an entry may set `length`, `lr`, `weight_decay`; later entries win.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from tinylm.errors import UserError
from tinylm.methods.base import Method, MethodConfig
from tinylm.methods.options import duration, number
from tinylm.methods.registry import register
from tinylm.duration import parse_duration

log = logging.getLogger(__name__)

POLICIES = ("paper", "light", "deep")
OVERRIDE_KEYS = ("at", "length", "lr", "weight_decay")
BEST = "sleep-best"  # snapshot tag of the best episode's weights


@dataclass
class SleepConfig(MethodConfig):
    episode: str = "10k steps"      # FORGETTER Table 1: 10,000 steps (Baby10M) / 70,000 (Baby100M)
    policy: str = "paper"           # paper (light -> rollback + deep -> stop) | light (always) | deep (always)
    threshold: float = 0.0          # an episode improves when val loss drops by more than this (notebooks: 0)
    patience: int = 1               # deep sleeps in a row without improvement before stopping (notebooks: 1)
    max_episodes: int | None = None  # stop after this many episodes; train.duration caps anyway
    episodes: list = field(default_factory=list)  # per-episode overrides: [{at, length, lr, weight_decay}]

    def __post_init__(self):
        self.episode = str(self.episode)
        duration(self.episode, "episode")
        if self.policy not in POLICIES:
            raise ValueError(f"policy {self.policy!r}: choose one of {', '.join(POLICIES)}")
        self.threshold = number(self.threshold, "threshold")
        if self.threshold < 0:
            raise ValueError(f"threshold is {self.threshold:g}; it is the smallest drop in validation loss that "
                             "counts as an improvement, so it must be >= 0")
        self.patience = number(self.patience, "patience", int)
        if self.patience < 1:
            raise ValueError(f"patience is {self.patience}: it counts deep sleeps without improvement, use 1 or more")
        if self.max_episodes is not None:
            self.max_episodes = number(self.max_episodes, "max_episodes", int)
            if self.max_episodes < 1:
                raise ValueError(f"max_episodes is {self.max_episodes}: use 1 or more (or leave it out)")
        if not isinstance(self.episodes, list):
            raise ValueError("episodes must be a list like [{at: last, lr: 5e-4}]")
        self.episodes = [self._override(i, e) for i, e in enumerate(self.episodes)]

    def _override(self, i: int, entry) -> dict:
        where = f"episodes[{i}]"
        if not isinstance(entry, dict) or "at" not in entry:
            raise ValueError(f"{where} must be a mapping with `at:` (an episode number, last or deep), "
                             "e.g. {at: last, lr: 5e-4}")
        unknown = sorted(set(entry) - set(OVERRIDE_KEYS))
        if unknown:
            raise ValueError(f"{where} has unknown key {unknown[0]!r} (keys: {', '.join(OVERRIDE_KEYS)})")
        at = entry["at"]
        if at == "last":
            at = -1
        if at != "deep":
            at = number(at, f"{where}.at", int)
            if at == 0:
                raise ValueError(f"{where}.at is 0: episodes are numbered from 1 (-1 is the last)")
            if at < 0 and self.max_episodes is None:
                raise ValueError(f"{where}.at counts from the end, which needs max_episodes (under the paper "
                                 "policy the end is not known in advance: `at: deep` selects the episodes after "
                                 "a deep sleep)")
            if at < 0:
                at = self.max_episodes + 1 + at
        out = {"at": at}
        if "length" in entry:
            out["length"] = str(entry["length"])
            duration(out["length"], f"{where}.length")
        if "lr" in entry:
            out["lr"] = number(entry["lr"], f"{where}.lr")
            if out["lr"] <= 0:
                raise ValueError(f"{where}.lr must be positive")
        if "weight_decay" in entry:
            out["weight_decay"] = number(entry["weight_decay"], f"{where}.weight_decay")
            if out["weight_decay"] < 0:
                raise ValueError(f"{where}.weight_decay must be >= 0")
        return out


@register
class Sleep(Method):
    name = "sleep"
    Config = SleepConfig

    def __init__(self, config: SleepConfig):
        super().__init__(config)
        self.begun = False       # the first episode's schedule has been set (not again on resume)
        self.episode = 1         # the current episode, numbered from 1
        self.start = 0           # step at which it began
        self.length = 0          # its length in steps
        self.mode = "deep" if config.policy == "deep" else "light"  # the sleep that ends a good episode
        self.after_deep = False  # the current episode follows a deep sleep
        self.best: float | None = None
        self.best_episode: int | None = None
        self.misses = 0          # deep sleeps in a row that did not improve
        self.history: list[dict] = []

    # -- events ----------------------------------------------------------------------------------
    def on_start(self, run) -> None:
        if self.begun:  # resumed: the schedule, hyperparameters and snapshots come from the checkpoint
            if self.best_episode is not None and self.config.policy == "paper":
                self._check_snapshot(run)
            return
        self.begun = True
        self.start = run.step
        self._begin(run)
        if run.recipe.train.warmup >= self.length:
            log.warning("sleep: train.warmup (%d steps) is not shorter than an episode (%d steps): the learning "
                        "rate never reaches its peak", run.recipe.train.warmup, self.length)
        if self.start + self.length >= run.total_steps:
            log.warning("sleep: the first episode (%d steps) is not shorter than the run (%d steps): no sleep "
                        "will happen; shorten `episode` or lengthen train.duration", self.length, run.total_steps)

    def on_step_end(self, run) -> None:
        if run.step - self.start < self.length:
            return
        cfg = self.config
        val = run.evaluate()["val_loss"] if cfg.policy == "paper" else None
        sleep = self._judge(run, val) if cfg.policy == "paper" else cfg.policy
        self.history.append({"episode": self.episode, "step": run.step, "val_loss": val, "sleep": sleep})
        run.log_event("episode_end", episode=self.episode, val_loss=val, best=self.best, sleep=sleep)
        if sleep == "stop":
            run.finish(f"sleep: a deep sleep no longer improves (best: episode {self.best_episode}, "
                       f"val loss {self.best:.4f})")
            return
        if cfg.max_episodes is not None and self.episode >= cfg.max_episodes:
            run.finish(f"sleep: {cfg.max_episodes} episodes done")
            return
        if run.step >= run.total_steps:  # train.duration ends here: nothing left to sleep for
            return
        if sleep == "deep":
            run.rebuild_model()  # new modules from the weights alone; optimizer fresh
        else:
            run.reset_optimizer()
        self.after_deep = sleep == "deep"
        self.episode += 1
        self.start = run.step
        self._begin(run)

    # -- the policy ------------------------------------------------------------------------------
    def _judge(self, run, val: float) -> str:
        """The paper's decision at the end of an episode: 'light', 'deep' or 'stop'."""
        improved = self.best is None or val < self.best - self.config.threshold
        new_best = self.best is None or val < self.best
        if new_best:  # the lowest loss so far, even when not lower by `threshold`: keep these weights
            self.best, self.best_episode = val, self.episode
            run.snapshot(BEST)
        if improved:
            self.misses = 0
            return self.mode
        if not new_best:  # worse than the best episode: back to its weights
            self._rollback(run)
        if self.mode == "light":
            self.mode = "deep"
            return "deep"
        self.misses += 1
        return "stop" if self.misses >= self.config.patience else "deep"

    def _rollback(self, run) -> None:
        self._check_snapshot(run)
        run.rollback(BEST)

    def _check_snapshot(self, run) -> None:
        if not run.has_snapshot(BEST):
            raise UserError(f"sleep: cannot roll back to the best episode ({self.best_episode}): its snapshot is "
                            f"missing from {run.out_dir or 'this run'}; restore it, or resume with `policy: light` "
                            "(no rollbacks)")

    # -- episodes ----------------------------------------------------------------------------------
    def _begin(self, run) -> None:
        """Start the current episode: its schedule cycle and its hyperparameters."""
        chosen = {}
        for entry in self.config.episodes:
            if entry["at"] == self.episode or (entry["at"] == "deep" and self.after_deep):
                chosen.update({k: v for k, v in entry.items() if k != "at"})
        self.length = self._steps(run, chosen.get("length", self.config.episode))
        base = run.recipe.train
        lr, wd = chosen.get("lr", base.lr), chosen.get("weight_decay", base.weight_decay)
        now = run.train_config
        if lr != now.lr or wd != now.weight_decay:
            run.set_hyperparameters(lr=lr, weight_decay=wd)
        run.restart_schedule(self.length)

    @staticmethod
    def _steps(run, duration: str) -> int:
        store = getattr(run, "store", None)
        per_epoch = len(store.split("train")) if store is not None else None
        return parse_duration(duration).to_steps(run.tokens_per_step, per_epoch)

    # -- state -------------------------------------------------------------------------------------
    _FIELDS = ("begun", "episode", "start", "length", "mode", "after_deep", "best", "best_episode", "misses",
               "history")

    def state_dict(self) -> dict:
        return {k: getattr(self, k) for k in self._FIELDS}

    def load_state_dict(self, state: dict) -> None:
        for k in self._FIELDS:
            setattr(self, k, state[k])
