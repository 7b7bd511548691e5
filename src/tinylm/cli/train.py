"""`tinylm train RECIPE --out DIR [--set key=value ...] [--resume] [--force]`"""

from __future__ import annotations

import os
from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser("train", help="train a model from a recipe (YAML file or bundled name)",
                       description=__doc__)
    p.add_argument("recipe", help="path to a recipe YAML, or a bundled recipe name (`tinylm models --recipes`)")
    p.add_argument("--out", help="run directory (default: runs/<recipe name>)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a recipe key, e.g. --set train.lr=3e-4 (repeatable)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its latest checkpoint")
    p.add_argument("--force", action="store_true", help="resume even though the recipe changed")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.set_defaults(func=run)


def run(args) -> int:
    from tinylm.cli.progress import TrainingProgress
    from tinylm.runs.execute import execute
    from tinylm.train.recipe import load_recipe

    recipe = load_recipe(args.recipe, args.overrides)
    out = Path(args.out) if args.out else Path("runs") / recipe.name
    progress = TrainingProgress(enabled=not args.quiet)
    try:
        summary = execute(recipe, out, resume=args.resume, force=args.force, on_start=progress.start,
                          on_step=progress.step)
    finally:
        progress.close()
    if int(os.environ.get("RANK", "0")) != 0:  # under torchrun, one process reports
        return 0 if summary["complete"] else 130
    if not summary["complete"]:
        print(f"stopped at step {summary['steps']}/{summary['total_steps']}; continue with: "
              f"tinylm train {args.recipe} --out {out} --resume")
        return 130
    val = summary.get("val_loss")
    print(f"run {out}: {summary['steps']} steps, {summary['tokens']:,} tokens, "
          f"val loss {val:.4f}" if val is not None else f"run {out}: {summary['steps']} steps")
    print(f"metrics: {out / 'metrics.jsonl'}  summary: {out / 'summary.json'}")
    return 0
