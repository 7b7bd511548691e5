"""`tinylm demo [--out DIR] [--steps N]`: prepare the bundled corpus, train a tiny decoder on the CPU,
evaluate, and show what it learned: a few sampled continuations and a plot of its loss.

Everything it needs ships with the package. Interrupted, it picks up where it stopped; run again
once complete, it only shows the samples and redraws the plot.
"""

from __future__ import annotations

from pathlib import Path

# Openings that suit the bundled books (Alice, Peter Pan, Tom Sawyer), sampled with fixed settings so
# every run of the demo on the same torch shows the same text for the same weights.
PROMPTS = ("Alice was", "Once upon a time", "Tom said")
SAMPLING = {"max_new_tokens": 24, "temperature": 0.8, "top_k": 40, "seed": 0}


def register(sub) -> None:
    p = sub.add_parser("demo", help="prepare the bundled corpus and train a tiny model (a few CPU minutes)",
                       description=__doc__)
    p.add_argument("--out", default="tinylm-demo", help="where the store and the run go (default ./tinylm-demo)")
    p.add_argument("--steps", type=int, metavar="N",
                   help="train for N steps instead of the recipe's 600 (same as --set train.duration=N)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a key of the demo recipe, e.g. --set model.name=L2-4-128x4")
    p.set_defaults(func=run)


def _overrides(args, data: dict) -> list[str]:
    """`--steps N` as recipe overrides, before the user's own --set (which win)."""
    from tinylm.errors import UserError

    if args.steps is None:
        return list(args.overrides)
    if args.steps < 1:
        raise UserError(f"--steps {args.steps}: give a positive number of steps (e.g. --steps 100)")
    if any(o.split("=", 1)[0].strip() == "train.duration" for o in args.overrides):
        raise UserError("give --steps N or --set train.duration=..., not both")
    # Log often enough that even a short run draws a curve (about ten points at least).
    log_every = min(int(data["train"].get("log_every", 20)), max(1, args.steps // 10))
    return [f"train.duration={args.steps} steps", f"train.log_every={log_every}", *args.overrides]


def run(args) -> int:
    import json

    import yaml

    from tinylm.cli.progress import TrainingProgress
    from tinylm.data import prepare_store
    from tinylm.optional import require
    from tinylm.output_location import check_output_dir, foreign_contents
    from tinylm.runs.execute import execute
    from tinylm.rundir.checkpoints import latest_checkpoint
    from tinylm.train.recipe import apply_overrides, find_recipe, recipe_from_dict

    require("matplotlib", "tinylm demo (its loss plot)")  # before anything is trained or written
    out = Path(args.out)
    check_output_dir(out, accept=lambda p: foreign_contents(p, ("store", "run"), "a tinylm demo",
                                                            "choose another --out"))
    store = out / "store"
    data = yaml.safe_load(find_recipe("demo").read_text())
    overrides = _overrides(args, data)
    if not (store / "meta.json").exists():
        d = data["data"]
        print(f"preparing the bundled corpus with {d['tokenizer']} into {store} ...", flush=True)
        prepare_store(d["sources"], d["tokenizer"], store, val_fraction=0.05, seed=0, docs="paragraph")
    data["data"].pop("sources")  # the tokenizer stays: it is the store's (config.yaml records the store's meta)
    data["data"]["store"] = str(store)
    recipe = recipe_from_dict(apply_overrides(data, overrides))
    run_dir = out / "run"
    resume = latest_checkpoint(run_dir) is not None
    before = json.loads((run_dir / "summary.json").read_text()) if (run_dir / "summary.json").is_file() else {}
    print(("resuming" if resume else "training") + f" {recipe.model['name']} ({recipe.train.duration}) into {run_dir} ...",
          flush=True)
    progress = TrainingProgress()
    try:
        summary = execute(recipe, run_dir, resume=resume, force=True, on_start=progress.start, on_step=progress.step,
                          on_event=progress.event)
    finally:
        progress.close()
    if not summary["complete"]:
        print(f"stopped at step {summary['steps']}; run `tinylm demo --out {out}` again to continue")
        return 130
    trained = f"{summary['steps']} steps, {summary['tokens']:,} tokens, {summary['parameters'] / 1e6:.1f}M parameters"
    if before.get("complete") and before.get("steps") == summary["steps"]:
        print(f"already trained: {trained}")
    else:
        print(f"done: {trained}, {summary['wall_s']:.0f} s")
    print(f"validation loss {summary['val_loss']:.4f} (perplexity {summary['val_ppl']:.1f})")
    _show_samples(run_dir)
    _show_files(run_dir)
    return 0


def _show_samples(run_dir: Path) -> None:
    import textwrap

    from tinylm.cli.generate import trained_window
    from tinylm.eval.generation import generate
    from tinylm.eval.hf_import import load_any, special_ids_for

    loaded = load_any(run_dir)
    samples = generate(loaded.model, loaded.tokenizer, list(PROMPTS), special_ids=special_ids_for(loaded),
                       window=trained_window(loaded), **SAMPLING)
    print(f"\nthe model continues {len(samples)} openings (temperature {SAMPLING['temperature']}, "
          f"top-k {SAMPLING['top_k']}, seed {SAMPLING['seed']}):")
    for s in samples:
        text = " ".join(s.text.split())  # the books' line breaks and indents would break the layout
        print(textwrap.fill(f"{s.prompt} » {text}" + ("" if s.ended else " …"), width=96,
                            initial_indent="  ", subsequent_indent="    "))
    print(f'more: tinylm generate {run_dir} --prompt "Alice was" --tokens 100')


def _show_files(run_dir: Path) -> None:
    from tinylm.runs.loss_plot import plot_loss

    plot = plot_loss(run_dir)
    print(f"\nrun:       {run_dir} (metrics.jsonl, summary.json, checkpoints/)")
    print(f"loss plot: {plot}")
