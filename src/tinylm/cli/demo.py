"""`tinylm demo [--out DIR]`: prepare the bundled corpus, train a tiny decoder on the CPU, evaluate.

Everything it needs ships with the package. Interrupted, it picks up where it stopped.
"""

from __future__ import annotations

from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser("demo", help="prepare the bundled corpus and train a tiny model (a few CPU minutes)",
                       description=__doc__)
    p.add_argument("--out", default="tinylm-demo", help="where the store and the run go (default ./tinylm-demo)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a key of the demo recipe, e.g. --set train.duration=100")
    p.set_defaults(func=run)


def run(args) -> int:
    import yaml

    from tinylm.cli.progress import TrainingProgress
    from tinylm.data import prepare_store
    from tinylm.runs.execute import execute
    from tinylm.train.checkpoint import latest_checkpoint
    from tinylm.train.recipe import apply_overrides, find_recipe, recipe_from_dict

    out = Path(args.out)
    store = out / "store"
    data = yaml.safe_load(find_recipe("demo").read_text())
    if not (store / "meta.json").exists():
        d = data["data"]
        print(f"preparing the bundled corpus with {d['tokenizer']} into {store} ...", flush=True)
        prepare_store(d["sources"], d["tokenizer"], store, val_fraction=0.05, seed=0, docs="paragraph")
    data["data"].pop("sources")
    data["data"].pop("tokenizer")
    data["data"]["store"] = str(store)
    recipe = recipe_from_dict(apply_overrides(data, args.overrides))
    run_dir = out / "run"
    resume = latest_checkpoint(run_dir) is not None
    print(("resuming" if resume else "training") + f" {recipe.model['name']} ({recipe.train.duration}) into {run_dir} ...",
          flush=True)
    progress = TrainingProgress()
    try:
        summary = execute(recipe, run_dir, resume=resume, force=True, on_start=progress.start, on_step=progress.step)
    finally:
        progress.close()
    if not summary["complete"]:
        print(f"stopped at step {summary['steps']}; run `tinylm demo --out {out}` again to continue")
        return 130
    print(f"done: {summary['steps']} steps, {summary['tokens']:,} tokens, {summary['parameters'] / 1e6:.1f}M parameters, "
          f"{summary['wall_s']:.0f} s")
    print(f"validation loss {summary['val_loss']:.4f} (perplexity {summary['val_ppl']:.1f})")
    print(f"run:     {run_dir}")
    print(f"metrics: {run_dir / 'metrics.jsonl'}")
    print(f"summary: {run_dir / 'summary.json'}")
    return 0
