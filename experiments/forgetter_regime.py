"""FORGETTER against a normal run whose length was tuned first, as the paper's was ("the number of steps
in an epoch was optimized so that more steps caused overtraining").  (Yamamoto & Miura, BabyLM 2025.)

1. Regime: normal runs (one linear decay to zero each, forgetter_tiny's recipe) of doubling lengths on
   Alice in Wonderland; N is the length whose run ends lowest (experiments/regime.py: best_length).
2. Arms at that N over --seeds seeds, forgetter_tiny's three: normal (N steps: the ladder's run for seed
   0), normal-3x (one decay over 3N) and forgetter (`sleep`, episodes of N/2, the paper's policy, capped at
   3N). --ladder-only stops after step 1.

    python experiments/forgetter_regime.py [--out experiments/out/forgetter] [--seeds 3] [--jobs 2]
    python experiments/forgetter_regime.py --quick --out /tmp/forgetter-quick   # the same pipeline, tiny
Writes experiments/results/forgetter-ladder.{json,png} and forgetter-regime.{json,png} (--results).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from common import command_line, mean_std, parallel_map, run_recipe, train_seconds, val_curve
from forgetter_tiny import _plot, _sleeps, recipe
from regime import best_length, plot_lengths

LADDER = (150, 300, 600, 1200, 2400)
QUICK_LADDER = (10, 20, 40)
NORMAL_LR, FORGETTER_LR = 1.35e-3, 1.0e-3  # forgetter_tiny's


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="experiments/out/forgetter")
    p.add_argument("--results", default="experiments/results")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--jobs", type=int, default=2, help="runs in parallel, one thread each")
    p.add_argument("--ladder-only", action="store_true", help="measure the regime, compare nothing")
    p.add_argument("--quick", action="store_true", help="tiny sizes: seconds, for checks")
    args = p.parse_args()
    started = time.perf_counter()
    out, results_dir = Path(args.out), Path(args.results)
    from tinylm.data import default_corpus_files, prepare_store
    store = out / "store"
    if not (store / "meta.json").exists():
        corpus = [str(f) for f in default_corpus_files() if "Alice" in f.name]
        prepare_store(corpus, "bpe:2048", store, val_fraction=0.1, seed=0, docs="paragraph")

    def every(n: int) -> int:
        return max(2 if args.quick else 10, n // 10)

    # 1. The regime: the normal run's best length.
    rungs = QUICK_LADDER if args.quick else LADDER
    ladder = {n: out / "ladder" / f"N{n}" for n in rungs}
    parallel_map(run_recipe, [(recipe(store, 0, n, NORMAL_LR, [], every(n)), d / "seed0")
                              for n, d in sorted(ladder.items(), reverse=True)], args.jobs)
    curves = {n: [(s, v) for s, _, v in val_curve(d / "seed0")] for n, d in ladder.items()}
    regime = best_length({n: c[-1][1] for n, c in curves.items()})
    n = regime["n"]
    results_dir.mkdir(parents=True, exist_ok=True)
    (results_dir / "forgetter-ladder.json").write_text(json.dumps(
        {"experiment": "forgetter-ladder", "command": command_line(), "model": "L4-4(2)-128x4-32 (gemma)",
         "corpus": "Alice in Wonderland",
         "tokens_per_step": 12 * 128, "schedule": f"linear decay to zero over N, lr {NORMAL_LR}", "seed": 0,
         "best_val_loss_by_n": {k: min(v for _, v in c) for k, c in curves.items()},
         "curves": {k: c for k, c in curves.items()}, **regime}, indent=1))
    plot_lengths(curves, regime, results_dir / "forgetter-ladder.png",
                 "FORGETTER's regime: normal runs of doubling length, each its own decay (seed 0)")
    if args.ladder_only:
        print(json.dumps({k: regime[k] for k in ("n", "at_edge", "rungs")}, indent=1))
        return

    # 2. The arms at N.
    arms = {"normal": lambda s: (recipe(store, s, n, NORMAL_LR, [], every(n)), ladder[n] / f"seed{s}"),
            "normal-3x": lambda s: (recipe(store, s, 3 * n, NORMAL_LR, [], every(n)), out / "normal-3x" / f"seed{s}"),
            "forgetter": lambda s: (recipe(store, s, 3 * n, FORGETTER_LR,
                                           [{"sleep": {"episode": f"{n // 2} steps", "policy": "paper"}}], every(n)),
                                    out / "forgetter" / f"seed{s}")}
    parallel_map(run_recipe, [arms[a](s) for a in ("normal-3x", "forgetter", "normal") for s in range(args.seeds)],
                 args.jobs)
    results, plotted = {}, {}
    for arm, make in arms.items():
        per_seed = []
        for seed in range(args.seeds):
            run_dir = make(seed)[1]
            points = val_curve(run_dir)
            per_seed.append({"seed": seed, "steps": points[-1][0],
                             "best_val_equal_budget": min(v for s, _, v in points if s <= n),
                             "best_val_all": min(v for _, _, v in points), "final_val": points[-1][2],
                             "events": _sleeps(run_dir)})
            plotted.setdefault(arm, []).append([(s, v) for s, _, v in points])
        results[arm] = {"runs": per_seed, **{k: mean_std([r[k] for r in per_seed])
                                             for k in ("best_val_equal_budget", "best_val_all", "steps")}}
    report = {"experiment": "forgetter-regime", "command": command_line(), "ladder": "forgetter-ladder.json",
              "regime": {k: regime[k] for k in ("rule", "n", "at_edge")},
              "n_steps_normal": n, "tokens_per_step": 12 * 128, "seeds": args.seeds, "arms": results,
              "wall_seconds": round(time.perf_counter() - started, 1),  # this invocation, runs reused included
              "train_seconds": train_seconds({make(s)[1] for make in arms.values() for s in range(args.seeds)})}
    (results_dir / "forgetter-regime.json").write_text(json.dumps(report, indent=1))
    _plot(plotted, results_dir / "forgetter-regime.png", n)
    print(json.dumps({arm: {k: {"mean": round(v["mean"], 4), "std": round(v["std"], 4)}
                            for k, v in r.items() if k != "runs"} for arm, r in results.items()}, indent=1))


if __name__ == "__main__":
    main()
