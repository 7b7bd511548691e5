"""FORGETTER at tiny scale: does training in sleeping episodes keep improving past the point where
one normal linear-decay run overfits?  (Yamamoto & Miura, BabyLM 2025; their Table 1 and Fig. 3.)

Three arms, each over several seeds, on one small corpus (Alice in Wonderland, 2k-token BPE):
  normal      one linear decay to zero over N steps (N is where a single decay stops improving)
  normal-3x   one linear decay over 3N steps (more tokens, no sleeps)
  forgetter   the `sleep` method, episodes of N/2 steps, the paper's policy, capped at 3N steps
Compared: best validation loss at the equal budget (first N steps) and at the larger one (3N).

    python experiments/forgetter_tiny.py [--out experiments/out/forgetter] [--seeds 3] [--n 300]
Prints JSON; writes results.json and val-loss.png into --out.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from common import mean_std, parallel_map, run_recipe, val_curve


def recipe(store: Path, seed: int, steps: int, lr: float, methods: list, eval_every: int) -> dict:
    return {
        "name": "forgetter-tiny-repro",
        "data": {"store": str(store), "sampler": "windows", "seq_len": 128, "seed": seed},
        "model": {"name": "L4-4(2)-128x4-32", "flavour": "gemma"},
        "train": {"duration": f"{steps} steps", "batch_size": 12, "lr": lr, "weight_decay": 1.0,
                  "betas": [0.9, 0.999], "schedule": "linear", "seed": seed, "log_every": 25},
        "eval": {"every": eval_every, "windows": 96, "batch_size": 32},
        "checkpoint": {"every": 0},
        "methods": methods,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--out", default="experiments/out/forgetter")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--n", type=int, default=300, help="the normal run's length in steps")
    p.add_argument("--jobs", type=int, default=2, help="runs in parallel, one thread each")
    p.add_argument("--corpus", default=None, help="default: the bundled Alice in Wonderland")
    args = p.parse_args()
    started = time.perf_counter()
    out = Path(args.out)
    from tinylm.data import default_corpus_files, prepare_store
    store = out / "store"
    if not (store / "meta.json").exists():
        corpus = [args.corpus] if args.corpus else [str(f) for f in default_corpus_files() if "Alice" in f.name]
        prepare_store(corpus, "bpe:2048", store, val_fraction=0.1, seed=0, docs="paragraph")
    n, every = args.n, max(10, args.n // 10)
    arms = {
        "normal": lambda s: recipe(store, s, n, 1.35e-3, [], every),
        "normal-3x": lambda s: recipe(store, s, 3 * n, 1.35e-3, [], every),
        "forgetter": lambda s: recipe(store, s, 3 * n, 1.0e-3,
                                      [{"sleep": {"episode": f"{n // 2} steps", "policy": "paper"}}], every),
    }
    # Train everything first (longest runs first, `--jobs` at a time); the loop below reads finished runs.
    todo = [(arms[arm](seed), out / arm / f"seed{seed}") for arm in ("normal-3x", "forgetter", "normal")
            for seed in range(args.seeds)]
    parallel_map(run_recipe, todo, args.jobs)
    results, curves = {}, {}
    for arm, make in arms.items():
        per_seed = []
        for seed in range(args.seeds):
            run_dir = out / arm / f"seed{seed}"
            summary = run_recipe(make(seed), run_dir)
            points = val_curve(run_dir)
            per_seed.append({"seed": seed, "steps": summary["steps"],
                             "best_val_equal_budget": min(v for s, _, v in points if s <= n),
                             "best_val_all": min(v for _, _, v in points), "final_val": points[-1][2],
                             "events": _sleeps(run_dir)})
            curves.setdefault(arm, []).append([(s, v) for s, _, v in points])
        results[arm] = {"runs": per_seed,
                        "best_val_equal_budget": mean_std([r["best_val_equal_budget"] for r in per_seed]),
                        "best_val_all": mean_std([r["best_val_all"] for r in per_seed]),
                        "steps": mean_std([r["steps"] for r in per_seed])}
    report = {"experiment": "forgetter-tiny", "n_steps_normal": n, "tokens_per_step": 12 * 128,
              "seeds": args.seeds, "arms": results}
    report["wall_seconds"] = round(time.perf_counter() - started, 1)  # this invocation, runs reused included
    (out / "results.json").write_text(json.dumps(report, indent=1))
    _plot(curves, out / "val-loss.png", n)
    print(json.dumps({arm: {k: {"mean": round(v["mean"], 4), "std": round(v["std"], 4)}
                            for k, v in r.items() if k != "runs"} for arm, r in results.items()}, indent=1))


def _sleeps(run_dir: Path) -> list:
    from tinylm.rundir.metrics import read_metrics
    return [{"step": r["step"], "sleep": r.get("sleep"), "val_loss": r.get("val_loss")}
            for r in read_metrics(run_dir / "metrics.jsonl") if r.get("event") == "episode_end"]


def _plot(curves: dict, path: Path, n: int) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for (arm, runs), color in zip(curves.items(), ("tab:blue", "tab:gray", "tab:red")):
        for i, run in enumerate(runs):
            ax.plot([s for s, _ in run], [v for _, v in run], color=color, alpha=0.6,
                    label=arm if i == 0 else None, marker=".")
    ax.axvline(n, color="k", ls=":", lw=1, label="equal budget (N)")
    ax.set_xlabel("optimizer step (12 x 128 tokens)")
    ax.set_ylabel("validation loss")
    ax.set_title("FORGETTER vs normal training, tiny scale (one line per seed)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
