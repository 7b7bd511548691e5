"""Active forgetting at tiny scale: does a model pretrained with embedding resets every k updates
adapt to a new language faster?  (Chen et al. 2023; GAFF, who found it hurt small models.)

Per seed: pretrain two Pythia-style models on English (the bundled books, 4k-token BPE) for P
steps, one standard (one cosine cycle) and one with active forgetting (`forget` every k steps,
cyclic schedule, last reset at P - k). Then adapt each to German (Grimms' fairy tales, a new 4k BPE
trained on German): fresh embeddings, body frozen, A steps. Measured on the adaptation: training
loss curve, its area (mean height), steps to reach a target loss, final validation loss.

    python experiments/gaff_tiny.py [--out experiments/out/gaff] [--seeds 3] [--pretrain 600] [--adapt 300]
Prints JSON; writes results.json and adaptation-loss.png into --out.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from common import mean_std, parallel_map, run_recipe

from tinylm.runs.adaptation import adapt
from tinylm.rundir.curves import curve, steps_to_reach

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "corpora"


def pretrain_recipe(store: Path, seed: int, steps: int, k: int | None) -> dict:
    methods = [] if k is None else [{"forget": {"every": k, "cyclic": True, "end": steps - k}}]
    return {
        "name": "gaff-tiny-" + ("af" if k else "standard"),
        "data": {"store": str(store), "sampler": "windows", "seq_len": 128, "seed": seed},
        "model": {"name": "L4-4-128x4", "flavour": "neox"},
        "train": {"duration": f"{steps} steps", "batch_size": 16, "lr": 1e-3, "weight_decay": 0.01,
                  "schedule": "cosine", "warmup": max(1, (k or steps) // 10), "min_lr_ratio": 0.1,
                  "seed": seed, "log_every": 10},
        "eval": {"every": 0, "windows": 64, "batch_size": 32},
        "checkpoint": {"every": 0},
        "methods": methods,
    }


def pretrain_and_adapt(english: Path, german: Path, out: Path, arm: str, k: int | None, seed: int,
                       pretrain: int, adapt_steps: int) -> dict:
    """One (arm, seed): pretrain on English (or reuse the finished run), adapt its embeddings to German."""
    pre = out / arm / f"seed{seed}" / "pretrain"
    summary = run_recipe(pretrain_recipe(english, seed, pretrain, k), pre)
    ada = out / arm / f"seed{seed}" / "adapt"
    report = adapt(pre, ada, store=str(german), duration=f"{adapt_steps} steps", seed=seed,
                   overrides=["train.log_every=10", "eval.every=0", "checkpoint.every=0"],
                   resume=(ada / "run" / "checkpoints").exists())
    return {"seed": seed, "pretrain_val_loss_en": summary["val_loss"],
            "adapt_val_loss_de": report["val_loss"], "adapt_loss_auc": report["loss_auc"],
            "adapt_final_loss": report["final_loss"], "points": curve(ada / "run", "loss")}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--out", default="experiments/out/gaff")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--pretrain", type=int, default=600)
    p.add_argument("--k", type=int, default=60, help="updates between embedding resets")
    p.add_argument("--adapt", type=int, default=300)
    p.add_argument("--jobs", type=int, default=2, help="runs in parallel, one thread each")
    p.add_argument("--german", default=str(SHARED / "german" / "grimm-1.txt"))
    args = p.parse_args()
    started = time.perf_counter()
    out = Path(args.out)
    from tinylm.data import TokenStore, default_corpus_files, prepare_store
    english, german = out / "store-en", out / "store-de"
    if not (english / "meta.json").exists():
        prepare_store([str(f) for f in default_corpus_files()], "bpe:4096", english, val_fraction=0.05, seed=0)
    if not (german / "meta.json").exists():
        prepare_store([args.german], "bpe:4096", german, val_fraction=0.05, seed=0, docs="line")
    TokenStore.open(german)
    arms = {"standard": None, "active-forgetting": args.k}
    rows, curves = {arm: [] for arm in arms}, {arm: [] for arm in arms}
    units = [(english, german, out, arm, k, seed, args.pretrain, args.adapt)
             for seed in range(args.seeds) for arm, k in arms.items()]
    for (_, _, _, arm, *_), row in zip(units, parallel_map(pretrain_and_adapt, units, args.jobs)):
        curves[arm].append(row["points"])
        rows[arm].append(row)
    # Target: the loss the standard models reach on average at the end of adaptation, +2%.
    target = 1.02 * mean_std([r["adapt_final_loss"] for r in rows["standard"]])["mean"]
    results = {}
    for arm, runs in rows.items():
        for r in runs:
            r["steps_to_target"] = steps_to_reach(r.pop("points"), target)
        results[arm] = {"runs": runs,
                        **{key: mean_std([r[key] for r in runs]) for key in
                           ("pretrain_val_loss_en", "adapt_val_loss_de", "adapt_loss_auc", "adapt_final_loss")},
                        "steps_to_target": mean_std([r["steps_to_target"] if r["steps_to_target"] is not None
                                                     else args.adapt for r in runs])}
    report = {"experiment": "gaff-tiny", "pretrain_steps": args.pretrain, "k": args.k, "adapt_steps": args.adapt,
              "target_loss": target, "seeds": args.seeds, "arms": results,
              "note": "steps_to_target counts a run that never reaches the target as the full adaptation length"}
    report["wall_seconds"] = round(time.perf_counter() - started, 1)  # this invocation, runs reused included
    (out / "results.json").write_text(json.dumps(report, indent=1))
    _plot(curves, out / "adaptation-loss.png", target)
    print(json.dumps({arm: {k: {"mean": round(v["mean"], 4), "std": round(v["std"], 4)}
                            for k, v in r.items() if k != "runs"} for arm, r in results.items()}, indent=1))


def _plot(curves: dict, path: Path, target: float) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for (arm, runs), color in zip(curves.items(), ("tab:blue", "tab:red")):
        for i, run in enumerate(runs):
            ax.plot([s for s, _ in run], [v for _, v in run], color=color, alpha=0.6, label=arm if i == 0 else None)
    ax.axhline(target, color="k", ls=":", lw=1, label=f"target {target:.2f}")
    ax.set_xlabel("adaptation step (embeddings only, body frozen)")
    ax.set_ylabel("training loss on German")
    ax.set_title("Adapting English-pretrained models to German (one line per seed)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
