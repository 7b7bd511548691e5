"""`tinylm sweep RECIPE --space SPACE.yaml ...`: the hyperparameter search and its stability check.

Kept apart from `cli/sweep.py` (the structure search's options and table) so each reads top to bottom.
"""

from __future__ import annotations

import sys
from pathlib import Path

DEFAULT_TRIALS = 20


def run_hparams(args) -> int:
    from tinylm.cli.sweep import _Progress, confirm_plan
    from tinylm.errors import UserError
    from tinylm.sweep.plan import plan_runs
    from tinylm.train.build import open_store
    from tinylm.train.distributed import World
    from tinylm.duration import parse_duration
    from tinylm.train.recipe import load_recipe

    trials = DEFAULT_TRIALS if args.trials is None else args.trials
    if trials < 1:
        raise UserError(f"--trials {trials}: give at least 1")
    full = load_recipe(args.recipe, args.overrides)  # what best-recipe.yaml is written from
    overrides = list(args.overrides)
    if args.budget:  # normalised, so "2k steps" and "2000steps" resume one study
        overrides.append(f"train.duration={parse_duration(args.budget)}")
    recipe = load_recipe(args.recipe, overrides)
    # Without optuna, the first import ends with one line saying how to install it (tinylm.optional).
    from tinylm.sweep.hparams import BEST_RECIPE, hyperparameter_sweep
    from tinylm.sweep.stability import REPORT, stability_check, stability_seeds
    from tinylm.sweep.space import load_space

    base = recipe.to_dict()
    if args.stability is not None:
        stability_seeds(base, args.stability)  # a bad N fails now, not after the study
    # The study's trials and the stability check's re-training (the best config and the base, N seeds
    # each), all with the recipe's model: searched keys may move it. Before the store is prepared.
    runs = trials + 2 * (args.stability or 0)
    if not confirm_plan(plan_runs(recipe, [recipe.model], runs=runs), args.yes):
        return 1
    params = load_space(args.space, base, open_store(recipe, World()))
    out = Path(args.out)
    print(f"{len(params)} hyperparameters ({', '.join(p.key for p in params)}); the study runs {trials} trials of "
          f"{recipe.train.duration} each into {out}" + ("" if args.pruner == "none" else
                                                       ", Hyperband stopping poor ones at their evals"))
    progress = _Progress(enabled=not args.quiet)
    try:
        result = hyperparameter_sweep(base, out, params, trials, storage=args.storage,
                                      study_name=args.study or f"{recipe.name}-hparams", seed=args.seed,
                                      pruner=None if args.pruner == "none" else "hyperband",
                                      recipe_for_best=full.to_dict(), on_trial_start=progress.trial_start,
                                      on_trial_end=progress.trial_end, on_start=progress.bar.start,
                                      on_step=progress.bar.step)
    finally:
        progress.bar.close()
    table(result.ranking[:args.top], len(result.ranking))
    print(f"ranking: {out / 'ranking.json'}" + (f"  best recipe: {out / BEST_RECIPE}" if result.ranking else ""))
    if result.pruned:
        print(f"{len(result.pruned)} trial(s) pruned early: see `pruned` in ranking.json")
    if result.failed:
        print(f"{len(result.failed)} trial(s) failed: see `failed` in ranking.json")
    if result.running:
        print(f"{result.running} trial(s) still running elsewhere (a dead worker's is retried by the next run)")
    if result.interrupted:
        print(f"interrupted; continue with the same command (tinylm sweep {args.recipe} --space {args.space} "
              f"--out {args.out} ...)", file=sys.stderr)
        return 130
    if args.stability is None:
        return 0
    if not result.ranking:
        raise UserError("no trial finished, so there is no best config to check: run more --trials")
    from tinylm.sweep.hparams import best_recipe

    def on_seed(seed: int, run_dir: Path, state: str) -> None:
        progress.bar.close()
        if not args.quiet:
            what = {"done": "finished, skipped", "resume": "resuming", "new": "training"}[state]
            print(f"stability: seed {seed} {what} {run_dir}", file=sys.stderr, flush=True)
    best = result.ranking[0]
    try:
        report = stability_check(base, best_recipe(base, best), out, args.stability, best_trial=best,
                                 force=args.force, on_seed=on_seed, on_start=progress.bar.start,
                                 on_step=progress.bar.step)
    finally:
        progress.bar.close()
    if report.get("interrupted"):
        print("stability check interrupted; continue with the same command", file=sys.stderr)
        return 130
    print(report["summary"])
    print(f"stability: {out / REPORT}")
    return 0


def table(rows: list[dict], total: int) -> None:
    """Rank, trial, validation loss and the searched values, one line each."""
    if not rows:
        print("no finished trials yet")
        return
    print(f"{'rank':>4} {'trial':>5} {'val loss':>9}  values")
    for r in rows:
        values = " ".join(f"{k}={_short(v)}" for k, v in r["params"].items())
        print(f"{r['rank']:>4} {r['trial']:>5} {r['val_loss']:>9.4f}  {values}")
    if total > len(rows):
        print(f"... {total - len(rows)} more in ranking.json")


def _short(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
