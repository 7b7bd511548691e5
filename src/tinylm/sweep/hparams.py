"""The hyperparameter search: a YAML space over recipe keys -> TPE + Hyperband -> best recipe + ranking.

BabyLlama-2 swept its teachers' learning rate, Adam betas and epsilon, batch size, warm-up, weight
decay, gradient clipping and dropout with BOHB (Bayesian optimisation plus Hyperband, which stops
badly performing runs early) on the validation loss. This is that search on tinylm runs: Optuna's
TPE sampler proposes, Hyperband prunes on the validation loss the loop reports at each eval (so
`eval.every` sets how often a trial can be stopped), and the shared study machinery (`run_study`)
gives resumption, SQLite or PostgreSQL storage and ranking.json. All trials share the recipe's
seeds, so their differences are the hyperparameters'; whether the winner's edge is more than a
lucky seed is the stability check's question (`tinylm.sweep.stability`).
"""

from __future__ import annotations

import logging
from pathlib import Path

import yaml

from tinylm.optional import require
from tinylm.sweep.space import Param, space_overrides
from tinylm.sweep.study import StudyResult, run_study
from tinylm.duration import parse_duration
from tinylm.train.recipe import apply_overrides, recipe_from_dict

optuna = require("optuna", "tinylm sweep")

log = logging.getLogger(__name__)

BEST_RECIPE = "best-recipe.yaml"


def hyperband(base: dict) -> optuna.pruners.BasePruner | None:
    """Hyperband on training steps: the first rung at the first eval, the last at the trial's length
    (when the duration is in steps; otherwise Optuna learns it from the first finished trial).
    None when the recipe never evaluates before the end: there is nothing to prune on."""
    recipe = recipe_from_dict(base)
    every = recipe.eval.every
    if every <= 0:
        return None
    duration = parse_duration(recipe.train.duration)
    steps = duration.to_steps(1) if duration.unit == "steps" else None
    if steps is not None and steps <= every:
        return None
    return optuna.pruners.HyperbandPruner(min_resource=every, max_resource=int(steps) if steps else "auto",
                                          reduction_factor=3)


def hyperparameter_sweep(base: dict, out_dir: Path, params: list[Param], n_trials: int, *, storage: str | None = None,
                         study_name: str = "hparams", seed: int = 0, pruner="hyperband",
                         recipe_for_best: dict | None = None,
                         on_trial_start=None, on_trial_end=None, on_start=None, on_step=None) -> StudyResult:
    """Run (or continue) the study to `n_trials` trials of `base` + a draw from `params`.

    Writes OUT/ranking.json and, once a trial has finished, OUT/best-recipe.yaml: the best trial's
    values applied to `recipe_for_best` (default `base`; the CLI gives the recipe without the sweep's
    shorter --budget, so the file trains at full length). `pruner`: "hyperband", None, or any
    Optuna pruner.
    """
    if pruner == "hyperband":
        pruner = hyperband(base)
        if pruner is None:
            log.warning("eval.every is 0 (or not before the end): trials report no validation loss while "
                        "they train, so none can be pruned; set eval.every to let Hyperband stop poor trials")
    result = run_study(base, out_dir, space_overrides(params), n_trials, storage=storage, study_name=study_name,
                       seed=seed, sampler=optuna.samplers.TPESampler(seed=seed), pruner=pruner, label=_label,
                       fingerprint={"space": {p.key: p.settings() for p in params}}, on_trial_start=on_trial_start,
                       on_trial_end=on_trial_end, on_start=on_start, on_step=on_step)
    if result.ranking:
        write_best_recipe(Path(out_dir) / BEST_RECIPE, recipe_for_best or base, result.ranking[0], study_name)
    return result


def best_recipe(recipe: dict, best: dict) -> dict:
    """`recipe` with the best trial's values, named `<name>-best`."""
    data = apply_overrides(recipe, best["overrides"])
    data["name"] = f"{recipe.get('name', 'run')}-best"
    return data


def write_best_recipe(path: Path, recipe: dict, best: dict, study_name: str) -> Path:
    data = best_recipe(recipe, best)
    data["description"] = (f"best of sweep study {study_name}: trial {best['trial']}, val loss "
                           f"{best['val_loss']:.4f} after {best.get('steps')} steps")
    header = (f"# Written by `tinylm sweep --space`: trial {best['trial']} of study {study_name!r} "
              f"(val loss {best['val_loss']:.4f}).\n# Searched values: {' '.join(best['overrides'])}\n"
              "# Train it with: tinylm train THIS_FILE --out DIR  (or --seeds 5 to see its spread)\n")
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(header + yaml.safe_dump(data, sort_keys=False))
    tmp.replace(path)
    return path


def _label(overrides: list[str]) -> str:
    """A trial directory's name: the searched values, short (`lr=0.0012,batch_size=16`)."""
    parts = []
    for o in overrides:
        key, _, value = o.partition("=")
        value = value.strip('"')
        try:
            value = f"{float(value):.3g}" if "." in value or "e" in value.lower() else value
        except ValueError:
            pass
        names = key.split(".")[1:]  # train.betas.1 -> betas.1; methods.0.sleep.threshold -> sleep.threshold
        parts.append(f"{'.'.join(names[1:] if key.startswith('methods.') else names)}={value}")
    return ",".join(parts)
