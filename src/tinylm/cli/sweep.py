"""`tinylm sweep RECIPE --out DIR [--target-heads 120] [--band 0.1] [--layers 4:48] [--width 672]
[--head-dim 64:288[:32]] [--kv-divides] [--trials N] [--budget "2k steps"] [--storage URL] [--seed N]
[--set key=value ...] [--yes]`
`tinylm sweep RECIPE --space SPACE.yaml --out DIR [--trials 20] [--budget ...] [--pruner hyperband|none]
[--stability N] [--storage URL] [--seed N] [--set key=value ...] [--yes]`

Without --space: FORGETTER's structure search, every structure whose total query heads lie within
the band around the target, trained for a short budget and ranked by validation loss.
With --space: a hyperparameter search (BabyLlama-2's), recipe keys -> distributions in a YAML file
(`train.lr: {low: 1e-4, high: 3e-3, log: true}`, `train.batch_size: [8, 16, 32]`), TPE proposing and
Hyperband stopping poor trials at their evals; writes OUT/best-recipe.yaml. --stability N then
re-trains the best config and the base recipe with N new seeds and says whether the edge survives.
Re-running the same command resumes the study (finished trials are kept; an interrupted one
continues from its checkpoint).

Either prints its plan first (runs, model sizes, training FLOPs, a time estimated from a one-step
probe); a sweep far larger than its recipe (more than 100 runs, or more than 30 minutes estimated)
asks y/N before it starts, and without a terminal needs --yes.
"""

from __future__ import annotations

import sys
from pathlib import Path

from tinylm.cli.numbers import SEED


def register(sub) -> None:
    p = sub.add_parser("sweep", help="search model structures (FORGETTER's 120-rule) or hyperparameters (--space)",
                       description=__doc__)
    p.add_argument("recipe", help="path to a recipe YAML, or a bundled recipe name")
    p.add_argument("--out", required=True,
                   help="sweep directory: study.db, trials/, ranking.json, heads-vs-layers.png or best-recipe.yaml")
    p.add_argument("--space", metavar="YAML", help="search these hyperparameters instead of structures")
    p.add_argument("--pruner", choices=("hyperband", "none"), default="hyperband",
                   help="with --space: stop poor trials at their evals (default hyperband; needs eval.every)")
    p.add_argument("--stability", type=int, metavar="N",
                   help="with --space: re-train the best config and the base recipe with N new seeds")
    p.add_argument("--force", action="store_true", help="with --stability: continue seed runs whose recipe changed")
    for flag, default, text in STRUCTURE_OPTIONS:
        p.add_argument(flag, default=None, help=f"{text} (default {default})",
                       **({"type": int} if flag in ("--target-heads", "--ffn-mult") else
                          {"type": float} if flag == "--band" else {}))
    p.add_argument("--kv-divides", action="store_true",
                   help="try every kv-head count that divides the query heads (default: kv = heads)")
    p.add_argument("--trials", type=int,
                   help="trials in the study in all (default: every candidate; 20 with --space)")
    p.add_argument("--budget", help="training duration of each trial, e.g. '2k steps' (default: the recipe's)")
    p.add_argument("--storage", help="Optuna storage URL (default sqlite:///OUT/study.db; postgresql://... to share)")
    p.add_argument("--study",
                   help="study name inside the storage (default: <recipe name>-structures, -hparams with --space)")
    p.add_argument("--seed", type=SEED, default=0,
                   help="orders the candidates / seeds the TPE sampler (every trial keeps the recipe's seeds)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a recipe key for every trial (repeatable)")
    p.add_argument("--list", action="store_true", help="print the candidate structures and exit")
    p.add_argument("--top", type=int, default=10, help="rows of the ranking to print (default 10)")
    p.add_argument("--quiet", action="store_true", help="no per-trial progress")
    p.add_argument("--yes", action="store_true",
                   help="start a sweep far larger than its recipe without asking (more than 100 runs or about 30+ "
                        "minutes estimated; the plan is printed first); needed when stdin is not a terminal")
    p.set_defaults(func=run)


# Options of the structure search alone: (flag, default, help).
STRUCTURE_OPTIONS = (("--target-heads", 120, "total query heads to aim at"),
                     ("--band", 0.1, "allowed relative deviation of the total"),
                     ("--layers", "4:48", "layer counts: FIRST:LAST[:STEP] or a comma list"),
                     ("--width", "672", "width target(s), each rounded to a multiple of the heads"),
                     ("--head-dim", "64:288", "head dims: FIRST:LAST[:STEP], step 32 unless given"),
                     ("--ffn-mult", 4, "FFN width as a multiple of the width"))


def run(args) -> int:
    from tinylm.errors import UserError
    from tinylm.output_location import check_output_dir

    check_output_dir(args.out)
    from tinylm.sweep.structures import StructureSpace, parse_int_range
    from tinylm.duration import parse_duration
    from tinylm.train.recipe import load_recipe

    given = [flag for flag, _, _ in STRUCTURE_OPTIONS if getattr(args, _dest(flag)) is not None]
    given += ["--kv-divides"] if args.kv_divides else []
    given += ["--list"] if args.list else []
    if args.space:
        if given:
            raise UserError(f"{given[0]} is an option of the structure search: leave it out with --space "
                            "(search model keys such as model.dropout in the space file)")
        from tinylm.cli.sweep_hparams import run_hparams
        return run_hparams(args)
    for flag in ("--stability", "--force"):
        if getattr(args, _dest(flag)) not in (None, False):
            raise UserError(f"{flag} goes with a hyperparameter sweep: add --space SPACE.yaml")
    if args.pruner != "hyperband":
        raise UserError("--pruner goes with a hyperparameter sweep (--space); the structure search trains every "
                        "candidate to its budget")
    opt = {flag: default if getattr(args, _dest(flag)) is None else getattr(args, _dest(flag))
           for flag, default, _ in STRUCTURE_OPTIONS}
    space = StructureSpace(target_heads=opt["--target-heads"], band=opt["--band"],
                           layers=parse_int_range(opt["--layers"], "--layers"),
                           widths=parse_int_range(opt["--width"], "--width"),
                           head_dims=parse_int_range(opt["--head-dim"], "--head-dim", step=32),
                           kv_divides=args.kv_divides, ffn_mult=opt["--ffn-mult"])
    candidates = space.candidates()
    overrides = list(args.overrides)
    if args.budget:
        # Normalised ("2k steps" and "2000steps" are one budget), so a resumed study sees the same recipe.
        overrides.append(f"train.duration={parse_duration(args.budget)}")
    recipe = load_recipe(args.recipe, overrides)
    if args.list:
        return _list(candidates, recipe)
    if args.trials is not None and args.trials < 1:
        raise UserError(f"--trials {args.trials}: give at least 1")
    # Without optuna this import ends with one line saying how to install it (tinylm.optional).
    from tinylm.sweep.structure_search import structure_sweep

    lo, hi = space.head_band
    n = len(candidates) if args.trials is None else min(args.trials, len(candidates))
    print(f"{len(candidates)} candidate structures with {lo}-{hi} query heads in total; the study runs {n} "
          f"trials of {recipe.train.duration} each into {args.out}")
    if args.trials and args.trials > len(candidates):
        print(f"(--trials {args.trials} is more than the candidates: each is tried once)")
    if not confirm_plan(_structure_plan(recipe, candidates, n, args.seed), args.yes):
        return 1
    progress = _Progress(enabled=not args.quiet)
    try:
        result = structure_sweep(recipe.to_dict(), Path(args.out), space, args.trials, storage=args.storage,
                                 study_name=args.study or f"{recipe.name}-structures", seed=args.seed,
                                 on_trial_start=progress.trial_start, on_trial_end=progress.trial_end,
                                 on_start=progress.bar.start, on_step=progress.bar.step)
    finally:
        progress.bar.close()
    _table(result.ranking[:args.top], len(result.ranking))
    out = Path(args.out)
    print(f"ranking: {out / 'ranking.json'}" + (f"  plot: {out / 'heads-vs-layers.png'}" if result.ranking else ""))
    if result.failed:
        print(f"{len(result.failed)} trial(s) failed: see `failed` in ranking.json")
    if result.running:
        print(f"{result.running} trial(s) still running elsewhere (a dead worker's is retried by the next run)")
    if result.interrupted:
        print(f"interrupted; continue with the same command (tinylm sweep {args.recipe} --out {args.out} ...)",
              file=sys.stderr)
        return 130
    return 0


def _structure_plan(recipe, candidates, n: int, seed: int):
    """The first `n` candidates in the order the study tries them, as a plan (sweep/plan.py)."""
    from tinylm.sweep.plan import plan_runs
    from tinylm.sweep.structures import check_candidates, depth_balanced_order, model_section

    fields = model_section(recipe.model)
    check_candidates(candidates, fields)  # a candidate the recipe's flavour cannot build is named first
    order = depth_balanced_order(candidates, seed)[:n]
    return plan_runs(recipe, [{"name": candidates[i].spec, **fields} for i in order])


def confirm_plan(plan, yes: bool) -> bool:
    """Print the plan; one far larger than its recipe (sweep/plan.py) starts only when confirmed: --yes,
    or y on a terminal. Not on a terminal and no --yes: one line naming --yes, before anything is written.
    False when the user says no."""
    from tinylm.errors import UserError

    print(plan.describe(), flush=True)
    if yes or not plan.far_larger:
        return True
    why = " and ".join(plan.reasons())
    if not _on_terminal():
        raise UserError(f"this sweep is far larger than its recipe ({why}): pass --yes to start it anyway, or "
                        "shrink it (--trials, --budget, a narrower space)")
    try:
        answer = input(f"this sweep is far larger than its recipe ({why}); start it? [y/N] ")
    except EOFError:
        answer = ""
    if answer.strip().lower() in ("y", "yes"):
        return True
    print("nothing started")
    return False


def _on_terminal() -> bool:
    try:
        return sys.stdin is not None and sys.stdin.isatty()
    except (AttributeError, ValueError):  # a closed or replaced stdin
        return False


def _dest(flag: str) -> str:
    return flag.lstrip("-").replace("-", "_")


class _Progress:
    """A line per trial; a training bar on a terminal (the train command's)."""

    def __init__(self, enabled: bool):
        from tinylm.cli.progress import TrainingProgress
        self.enabled = enabled
        self.bar = TrainingProgress(enabled=enabled and sys.stderr.isatty())

    def trial_start(self, number: int, run_dir: Path) -> None:
        if self.enabled:
            print(f"trial {number}: training {run_dir}", file=sys.stderr, flush=True)

    def trial_end(self, row: dict) -> None:
        self.bar.close()  # a new bar starts with the next trial's run
        if self.enabled:
            value = row.get("val_loss")
            what = f"val loss {value:.4f} in {row.get('wall_s') or 0:.0f} s" if value is not None else \
                f"failed: {row.get('error', row['state'])}"
            if row["state"] == "pruned":
                what = f"pruned at step {row.get('pruned_at')}" + (f" (val loss {value:.4f})" if value else "")
            label = row.get("spec") or " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                                                 for k, v in row.get("params", {}).items())
            print(f"trial {row['trial']}: {label} {what}", file=sys.stderr, flush=True)


def _list(candidates, recipe) -> int:
    """The candidates and their block parameters (independent of the vocabulary and the head)."""
    from tinylm.models import count_parameters, resolve_model_config
    from tinylm.sweep.structures import model_section

    fields = {k: v for k, v in model_section(recipe.to_dict()["model"]).items() if k != "vocab_size"}
    flavour = fields.pop("flavour", None)
    print(f"{'spec':<24} {'heads':>5} {'block params':>13}")
    for s in candidates:
        cfg = resolve_model_config(s.spec, flavour=flavour, **fields)
        print(f"{s.spec:<24} {s.total_heads:>5} {s.layers * count_parameters(cfg)['per_layer']:>13,}")
    print(f"{len(candidates)} candidates")
    return 0


def _table(rows: list[dict], total: int) -> None:
    if not rows:
        print("no finished trials yet")
        return
    print(f"{'rank':>4} {'trial':>5}  {'spec':<24} {'heads':>5} {'params':>10} {'val loss':>9}")
    for r in rows:
        params = f"{r['parameters'] / 1e6:.2f}M" if r.get("parameters") else "-"
        print(f"{r['rank']:>4} {r['trial']:>5}  {r.get('spec', '-'):<24} {r.get('total_heads', '-'):>5} "
              f"{params:>10} {r['val_loss']:>9.4f}")
    if total > len(rows):
        print(f"... {total - len(rows)} more in ranking.json")
