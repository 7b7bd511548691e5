"""The structure search: enumerated candidates -> an Optuna study of short runs -> ranking + figure 1.

The candidates are one integer parameter, `candidate` (an index into the enumeration, compact in the
study's storage); each trial records its structure (spec, layers, heads, kv_heads, width, head_dim,
total_heads) as user attributes so ranking.json and the plot need nothing but the study.
"""

from __future__ import annotations

import logging
from pathlib import Path

from tinylm.errors import UserError
from tinylm.optional import require
from tinylm.sweep.structures import StructureSpace, check_candidates, depth_balanced_order, model_section
from tinylm.sweep.study import StudyResult, run_study

optuna = require("optuna", "tinylm sweep")
TrialState = optuna.trial.TrialState

log = logging.getLogger(__name__)


class OrderedSampler(optuna.samplers.BaseSampler):
    """Hands out the values of one parameter in a fixed order, each value once per study.

    Optuna's GridSampler also visits each point once, but in its own random order; the structure
    search needs *its* order (every depth early, see `depth_balanced_order`). Used values are read
    from the study's trials, so several processes sharing a study continue one another's order; two
    trials choosing at the same instant do not pick the same value, as each leaves the first free
    values to the running trials numbered before it that have not chosen yet (the storage numbers
    trials atomically). When the order is exhausted, or for any other parameter, values are drawn at
    random with the seed.
    """

    def __init__(self, name: str, order: list, seed: int = 0):
        self.name, self.order = name, list(order)
        self._fallback = optuna.samplers.RandomSampler(seed=seed)

    def infer_relative_search_space(self, study, trial):
        return {}

    def sample_relative(self, study, trial, search_space):
        return {}

    def sample_independent(self, study, trial, param_name, param_distribution):
        if param_name == self.name:
            trials = study.get_trials(deepcopy=False)
            used = {t.params[param_name] for t in trials if param_name in t.params}
            # Trials started before this one and still choosing take the first free values, in number order.
            choosing = sum(t.number < trial.number and t.state == TrialState.RUNNING and param_name not in t.params
                           for t in trials)
            free = [value for value in self.order if value not in used]
            if choosing < len(free):
                return free[choosing]
        return self._fallback.sample_independent(study, trial, param_name, param_distribution)


def structure_sweep(base: dict, out_dir: Path, space: StructureSpace, n_trials: int | None = None, *,
                    storage: str | None = None, study_name: str = "structures", seed: int = 0,
                    on_trial_start=None, on_trial_end=None, on_start=None, on_step=None) -> StudyResult:
    """Train up to `n_trials` candidates of `space` (default: all) on the `base` recipe dict.

    Writes OUT/ranking.json and OUT/heads-vs-layers.png (when matplotlib is installed). The
    training budget is the base recipe's `train.duration`; the init seed is the recipe's, equal for
    every candidate so that differences are the structure's; `seed` only orders the candidates.
    """
    candidates = space.candidates()
    base = dict(base, model={"name": "(swept)", **model_section(base.get("model") or {})})
    check_candidates(candidates, base["model"])
    n_trials = len(candidates) if n_trials is None else min(n_trials, len(candidates))
    sampler = OrderedSampler("candidate", depth_balanced_order(candidates, seed), seed=seed)

    def structure(trial: optuna.Trial) -> list[str]:
        s = candidates[trial.suggest_int("candidate", 0, len(candidates) - 1)]
        for key, value in s.attrs().items():
            trial.set_user_attr(key, value)
        return [f"model.name={s.spec}"]

    result = run_study(base, out_dir, structure, n_trials, storage=storage, study_name=study_name, seed=seed,
                       sampler=sampler, label=lambda overrides: overrides[0].split("=", 1)[1],
                       fingerprint={"structure_space": space.settings()}, on_trial_start=on_trial_start,
                       on_trial_end=on_trial_end, on_start=on_start, on_step=on_step)
    if result.ranking:
        try:
            from tinylm.sweep.plots import plot_heads_vs_layers
        except UserError as e:  # matplotlib missing: the ranking is written, the figure is not
            log.warning("no heads-vs-layers.png: %s", e)
        else:
            plot_heads_vs_layers(result.ranking, space, Path(out_dir) / "heads-vs-layers.png")
    return result
