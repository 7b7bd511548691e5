"""`tinylm train RECIPE --out DIR [--set key=value ...] [--resume auto] [--force] [--seeds N|A,B,C] [--log TRACKERS]`
`tinylm train --out DIR --resume [--set key=value ... --force]`

`--resume auto` (plain `--resume` is the same) starts the run, or continues it when DIR holds one: the one
command line a requeued batch job (`sbatch --requeue`) or a preempted cloud machine runs every time, with
--seeds too and under torchrun (examples/slurm/).

To continue a stopped run, its directory is enough: the run's own config.yaml (the resolved recipe,
`--set` values included) is the recipe. A recipe given with --resume is compared with it; a
difference is refused unless --force.

With --seeds, the recipe is trained once per seed into OUT/seed{N}/ and OUT/seeds-summary.json
gets each seed's final and best validation loss with their mean ± sample std. Each seed sets both
train.seed (initial weights, dropout) and data.seed (data order) to N; pin one with --set (e.g.
--set data.seed=0) to vary only the other. The validation windows (eval.seed) are the same for all.
Running the same command again continues: finished seeds are skipped, an interrupted one resumes.

With --log (or the recipe's `log: [tensorboard, wandb, mlflow]`), every line of metrics.jsonl (log steps,
evaluations, each method's events as `events/<name>` = 1 at its step) and the resolved recipe (as
hyperparameters) also go to those trackers, into the run directory by default: OUT/tensorboard, OUT/wandb
(W&B's run id kept in OUT/trackers.json; WANDB_MODE=offline works without network), OUT/mlruns (MLflow's
file store, unless MLFLOW_TRACKING_URI is set). metrics.jsonl is written first and stays the record: a
tracker failing mid-run is warned about once and dropped, training goes on. A resumed run logs into the
same trackers without doubling steps; each seed of --seeds has its own.

Exit status: 0 the run finished; 2 a mistake in the input (one line naming it and the fix, nothing written);
3 training diverged: its loss or gradient norm became NaN or inf (one line naming the step; the last good
checkpoint stays the latest; `train.on_nan: rollback` goes back to it at a lower learning rate instead);
130 stopped by a signal -- Ctrl-C, SIGTERM (a scheduler's preemption, `kill`) or SIGUSR1 (SLURM's warning
before the time limit, `#SBATCH --signal=B:USR1@120`) -- after finishing its step and writing a checkpoint there;
one line says how to continue (`--resume auto`). Not 0, so nothing that waits for a finished run (`&&`,
`--dependency=afterok`) starts on a half-trained one; one status whatever the signal, so a job script needs one test
before `scontrol requeue`. Under torchrun the processes agree on the step, so a signal reaching one rank stops all.
"""

from __future__ import annotations

import os
from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser("train", help="train a model from a recipe (YAML file or bundled name)",
                       description=__doc__)
    p.add_argument("recipe", nargs="?",
                   help="path to a recipe YAML, or a bundled recipe name (`tinylm models --recipes`); "
                        "with --resume it may be left out (the run's config.yaml is the recipe)")
    p.add_argument("--out", help="run directory (default: runs/<recipe name>)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a recipe key, e.g. --set train.lr=3e-4 (repeatable)")
    p.add_argument("--resume", nargs="?", const="auto", metavar="auto",
                   help="`--resume auto` (or plain `--resume`): continue the run in --out from its latest checkpoint "
                        "(`tinylm train --out DIR --resume`); with a recipe, where no checkpoint is yet (a new "
                        "directory, a run killed before its first one), start it -- one command line for a requeued "
                        "or preempted job")
    p.add_argument("--force", action="store_true",
                   help="resume even though the recipe changed; the new values rule from the resumed step on, and a "
                        "new train.duration re-lays the learning-rate schedule over the new length (the rate "
                        "moves to the new curve's value at that step and still reaches its end value at the new end)")
    p.add_argument("--log", metavar="TRACKERS",
                   help="mirror every metrics line and event to trackers: tensorboard, wandb, mlflow (a comma list, "
                        "added to the recipe's `log:`; `none` for none). Their files go inside the run directory: "
                        "OUT/tensorboard, OUT/wandb (set WANDB_MODE=offline for no account and no network), "
                        "OUT/mlruns (unless MLFLOW_TRACKING_URI is set); metrics.jsonl stays the record")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.add_argument("--seeds", metavar="N|A,B,C",
                   help="train once per seed into OUT/seed{N}/: a count (5 = seeds 0..4) or a list (3,7,11); "
                        "sets train.seed and data.seed to N unless one is fixed with --set; re-run to continue")
    p.set_defaults(func=run)


def run(args) -> int:
    import shlex

    from tinylm.cli.progress import TrainingProgress
    from tinylm.runs.execute import execute

    _resume_option(args)
    recipe = _with_trackers(_recipe(args), args.log)
    out = Path(args.out) if args.out else Path("runs") / recipe.name
    if args.seeds is not None:
        return _seeds(args, recipe, out)
    progress = TrainingProgress(enabled=not args.quiet, announce=True)
    try:
        summary = execute(recipe, out, resume=args.resume, force=args.force, on_start=progress.start,
                          on_step=progress.step, on_event=progress.event)
    finally:
        progress.close()
    if int(os.environ.get("RANK", "0")) != 0:  # under torchrun, one process reports
        return 0 if summary["complete"] else 130
    if not summary["complete"]:
        print(f"stopped at step {summary['steps']}/{summary['total_steps']} (checkpoint written); continue with: "
              f"tinylm train --out {shlex.quote(str(out))} --resume auto")
        return 130
    val = summary.get("val_loss")
    print(f"run {out}: {summary['steps']} steps, {summary['tokens']:,} tokens, "
          f"val loss {val:.4f}" if val is not None else f"run {out}: {summary['steps']} steps")
    print(f"metrics: {out / 'metrics.jsonl'}  summary: {out / 'summary.json'}")
    return 0


def _resume_option(args) -> None:
    """`--resume` takes `auto` or nothing; `--resume RECIPE` (a recipe written after it, as before `auto` existed)
    is still the recipe."""
    from tinylm.errors import UserError

    if args.resume in (None, "auto"):
        args.resume = args.resume is not None
        return
    if args.recipe is not None:
        raise UserError(f"--resume takes `auto` or nothing, not {args.resume!r}: "
                        "tinylm train RECIPE --out DIR --resume auto")
    args.recipe, args.resume = args.resume, True


def _recipe(args):
    """The recipe named on the command line, or with --resume and none named, the run's own config.yaml."""
    from tinylm.errors import UserError
    from tinylm.train.build import recipe_for_run
    from tinylm.train.recipe import load_recipe

    if args.recipe is not None:
        return load_recipe(args.recipe, args.overrides)
    if not args.resume:
        raise UserError("give a recipe (a YAML file or a bundled name: `tinylm models --recipes`), or continue a "
                        "run with `tinylm train --out DIR --resume`")
    if args.seeds is not None:
        raise UserError("--seeds needs the recipe the study was started with: tinylm train RECIPE --out DIR "
                        "--seeds ... (re-running it continues the study)")
    if not args.out:
        raise UserError("--resume without a recipe needs the run directory: tinylm train --out DIR --resume")
    if not (Path(args.out) / "config.yaml").is_file():
        raise UserError(f"{args.out} holds no run to resume (no config.yaml): give the recipe, "
                        f"`tinylm train RECIPE --out {args.out} --resume` starts the run where none is yet")
    return recipe_for_run(args.out, args.overrides)


def _with_trackers(recipe, option: str | None):
    """`--log a,b` adds trackers to the recipe's `log:` (`--log none`: none); checked like the recipe's own."""
    import dataclasses

    from tinylm.tracking import parse_sink_list

    if option is None:
        return recipe
    names = parse_sink_list(option)
    return dataclasses.replace(recipe, log=list(dict.fromkeys(recipe.log + names)) if names else [])


def _seeds(args, recipe, out: Path) -> int:
    """One run per seed, then the one-screen table of seeds-summary.json."""
    import sys

    from tinylm.cli.progress import TrainingProgress
    from tinylm.runs.seeds import SUMMARY, parse_seeds, pinned_seed_keys, train_seeds

    seeds = parse_seeds(args.seeds)
    pinned = pinned_seed_keys(args.overrides)
    main = int(os.environ.get("RANK", "0")) == 0
    progress = TrainingProgress(enabled=not args.quiet, announce=True)

    def on_seed(seed: int, run_dir: Path, state: str) -> None:
        progress.close()  # each seed's run gets its own bar
        if main and not args.quiet:
            what = {"done": "finished, skipped", "resume": "resuming", "new": "training"}[state]
            print(f"seed {seed} ({seeds.index(seed) + 1}/{len(seeds)}): {what} {run_dir}", file=sys.stderr, flush=True)
    try:
        result = train_seeds(recipe.to_dict(), out, seeds, pinned=pinned, force=args.force, on_seed=on_seed,
                             on_start=progress.start, on_step=progress.step, on_event=progress.event,
                             write=main)
    finally:
        progress.close()
    if not main:
        return 130 if result.interrupted else 0
    print_seeds_table(result.summary)
    print(f"summary: {out / SUMMARY}")
    if result.interrupted:
        print(f"interrupted; continue with the same command (tinylm train {args.recipe} --out {out} --seeds "
              f"{args.seeds} ...)", file=sys.stderr)
        return 130
    return 0


def print_seeds_table(summary: dict) -> None:
    from tinylm.runs.stats import mean_pm

    varied = " and ".join(summary["varied"]) or "nothing (both seeds pinned)"
    print(f"{summary['recipe']}: {len(summary['seeds'])} seeds, varying {varied}")
    print(f"{'seed':>6} {'init':>5} {'data':>5} {'steps':>7} {'final val':>10} {'best val':>10}")
    for r in summary["runs"]:
        fin = f"{r['val_loss']:>10.4f}" if r.get("val_loss") is not None else f"{'-':>10}"
        best = f"{r['best_val_loss']:>10.4f}" if r.get("best_val_loss") is not None else f"{'-':>10}"
        print(f"{r['seed']:>6} {r['init_seed']:>5} {r['data_seed']:>5} {r.get('steps') or 0:>7} {fin} {best}"
              + ("" if r["complete"] else "  (interrupted)"))
    print(f"final val loss {mean_pm(summary['val_loss'])}   best val loss {mean_pm(summary['best_val_loss'])}"
          "   (mean ± sample std)")
