"""Incremental layer-wise training at tiny scale: is growing a model stage by stage worth its compute?
(Li, Fung & Huang, "On the effectiveness of incremental training of large language models"; their
figures 1 and 2: at the baseline's compute the grown models are still behind.)

Three arms, each over several seeds, on the bundled books (2k-token BPE), a 4-layer GPT-2 of width 128:
  baseline   all 4 layers train for N steps
  grow-S2    the `grow` method: 2 stages of 2 layers over N steps, then continual training to 1.5 N
  grow-S4    4 stages of 1 layer over N steps, then continual training to 1.5 N
Same hyperparameters everywhere (constant learning rate, no clipping, as the paper's code; a fresh
AdamW for the continual phase, as theirs). Compared: validation loss at equal steps (step N) and at
equal compute (the step at which each grown run has spent the baseline's N-step FLOPs, from the
FLOPs every run logs), beside the paper's closed-form prediction of that step.

    python experiments/grow_tiny.py [--out experiments/out/grow] [--seeds 3] [--n 240] [--jobs 2]
Prints JSON; writes results.json and val-loss.png into --out.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from common import mean_std, parallel_map, run_recipe

MODEL = {"name": "L4-4-128x4", "flavour": "gpt2"}
BATCH, SEQ = 16, 128


def recipe(store: Path, seed: int, steps: int, methods: list, eval_every: int, model: dict = MODEL) -> dict:
    return {
        "name": "grow-tiny-repro",
        "data": {"store": str(store), "sampler": "windows", "seq_len": SEQ, "seed": seed},
        "model": dict(model),
        "train": {"duration": f"{steps} steps", "batch_size": BATCH, "lr": 1e-3, "weight_decay": 0.1,
                  "betas": [0.9, 0.95], "schedule": "constant", "clip": 0, "seed": seed, "log_every": 10},
        "eval": {"every": eval_every, "windows": 64, "batch_size": 32},
        "checkpoint": {"every": 0},
        "methods": methods,
    }


def grow(stages: int, n: int) -> list:
    return [{"grow": {"stages": stages, "incremental": f"{n} steps", "continual_optimizer": "reset"}}]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--out", default="experiments/out/grow")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--n", type=int, default=240, help="the baseline's length in steps (= the stages' total)")
    p.add_argument("--jobs", type=int, default=2, help="runs in parallel, one thread each")
    args = p.parse_args()
    started = time.perf_counter()
    out, n = Path(args.out), args.n
    from tinylm.data import default_corpus_files, prepare_store
    store = out / "store"
    if not (store / "meta.json").exists():
        prepare_store([str(f) for f in default_corpus_files()], "bpe:2048", store, val_fraction=0.05, seed=0,
                      docs="paragraph")
    every, long = max(5, n // 10), n * 3 // 2
    arms = {"baseline": (n, []), "grow-S2": (long, grow(2, n)), "grow-S4": (long, grow(4, n))}
    todo = [(recipe(store, seed, steps, methods, every), out / arm / f"seed{seed}")
            for arm in ("grow-S2", "grow-S4", "baseline") for seed in range(args.seeds)
            for steps, methods in [arms[arm]]]
    parallel_map(run_recipe, todo, args.jobs)  # the loop below reads the finished runs

    results, curves = compare_arms(lambda arm, seed: out / arm / f"seed{seed}", list(arms), args.seeds, n)
    report = {"experiment": "grow-tiny", "model": MODEL, "n_steps_baseline": n, "incremental_runs_steps": long,
              "tokens_per_step": BATCH * SEQ, "seeds": args.seeds, "arms": results,
              "equal_compute_step_predicted": _predicted(store, n)}
    report["wall_seconds"] = round(time.perf_counter() - started, 1)  # this invocation, runs reused included
    (out / "results.json").write_text(json.dumps(report, indent=1))
    _plot(curves, out / "val-loss.png", n)
    print(json.dumps({"arms": {arm: {k: {"mean": round(v["mean"], 4), "std": round(v["std"], 4)}
                                     for k, v in r.items() if k != "runs"} for arm, r in results.items()},
                      "equal_compute_step_predicted": report["equal_compute_step_predicted"],
                      "wall_seconds": report["wall_seconds"]}, indent=1))


def compare_arms(run_dir, arms: list[str], seeds: int, n: int) -> tuple[dict, dict]:
    """Per arm over seeds: validation loss at equal steps (step n), at equal compute (the step at which the
    run has spent the baseline's FLOPs at step n) and at its end; and the curves for the plot.
    `run_dir(arm, seed)` names each run; arms[0] is the baseline."""
    from tinylm.eval.compare import compute_curves
    from tinylm.rundir.curves import value_at
    rows = {arm: [] for arm in arms}
    curves = {arm: [] for arm in arms}
    for seed in range(seeds):
        base = run_dir(arms[0], seed)
        runs = [base] + [run_dir(arm, seed) for arm in arms[1:]]
        data = compute_curves(runs, "flops", reference=base, at_step=n)
        by_steps = compute_curves(runs, "steps", reference=base, at_step=n)
        for arm, r, s in zip(arms, data["runs"], by_steps["runs"]):
            eq = r["equal_compute"]
            if arm == arms[0]:  # the baseline is its first n steps (a longer constant-rate run holds them)
                kept = sum(1 for step, _ in s["val_loss"] if step <= n)
                r = {**r, "val_loss": r["val_loss"][:kept], "steps": n, "flops": data["reference_flops"]}
                s = {**s, "val_loss": s["val_loss"][:kept]}
            rows[arm].append({"seed": seed, "val_equal_steps": value_at(s["val_loss"], n),
                              "val_equal_flops": eq["val_loss"], "equal_compute_step": eq["step"],
                              "val_final": r["val_loss"][-1][1], "steps": r["steps"], "flops": r["flops"]})
            curves[arm].append({"flops": r["val_loss"], "steps": s["val_loss"], "equal": (eq["x"], eq["step"],
                                                                                           eq["val_loss"])})
    results = {arm: {"runs": runs, **{k: mean_std([r[k] for r in runs]) for k in
                                      ("val_equal_steps", "val_equal_flops", "equal_compute_step", "val_final")}}
               for arm, runs in rows.items()}
    return results, curves


def _predicted(store: Path, n: int, model: dict = MODEL) -> dict:
    """The paper's closed form and our exact count of the same curriculum, before any training."""
    from tinylm.data import TokenStore
    from tinylm.methods.grow_plan import incremental_compute
    from tinylm.models import resolve_model_config
    cfg = resolve_model_config(model["name"], flavour=model["flavour"], vocab_size=TokenStore.open(store).vocab_size)
    out = {}
    for stages in (2, 4):
        r = incremental_compute(cfg, stages, n, SEQ, tokens_per_step=BATCH * SEQ)
        out[f"grow-S{stages}"] = {"closed_form": r["closed_form"]["equal_compute_step"],
                                  "exact": n + r["exact"]["continual_steps"]}
    return out


def _plot(curves: dict, path: Path, n: int,
          title: str = "Incremental layer-wise training vs baseline, tiny scale") -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.5))
    colors = {"baseline": "tab:gray", "grow-S2": "tab:blue", "grow-S4": "tab:red"}
    for arm, runs in curves.items():
        for i, run in enumerate(runs):
            for ax, key, at in ((axes[0], "flops", 0), (axes[1], "steps", 1)):
                ax.plot([x for x, _ in run[key]], [v for _, v in run[key]], color=colors[arm], alpha=0.6,
                        label=arm if i == 0 else None)
                if arm != "baseline" and run["equal"][at] is not None and run["equal"][2] is not None:
                    ax.plot([run["equal"][at]], [run["equal"][2]], "o", color=colors[arm], markersize=9)
    axes[1].axvline(n, color="k", ls=":", lw=1, label="equal steps (N)")
    axes[0].set_xlabel("cumulative training FLOPs")
    axes[1].set_xlabel(f"optimizer step ({BATCH} x {SEQ} tokens)")
    for ax in axes:
        ax.set_ylabel("validation loss")
        ax.legend()
    fig.suptitle(f"{title} (dots: the baseline's compute at N)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
