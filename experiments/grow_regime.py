"""Incremental layer-wise training in the paper's regime: the baseline's budget reaches the flat part of
its curve before the arms are compared.  (Li, Fung & Huang: at the baseline's compute the grown models
are still behind; grow_tiny.py found the opposite at 240 steps, where every run is still steep.)

1. Regime: one baseline run (4-layer GPT-2, width 128, constant learning rate, the paper's code) read at
   doubling lengths. N is the first length at which doubling the steps lowers validation loss by less
   than DELTA (experiments/regime.py). The data is the 22 Gutenberg books in ../shared/data (about 5.5M
   tokens with a 2k BPE), so the curve flattens by the model's capacity, not by repeating a small corpus.
2. Arms at that N, over --seeds seeds: baseline (N steps; with a constant rate the ladder's first N
   steps are the seed-0 baseline), grow-S2 and grow-S4 (N steps of stages, continual training to 1.5 N),
   compared at equal steps and at equal compute (grow_tiny.compare_arms).

    python experiments/grow_regime.py [--out experiments/out/grow-regime] [--seeds 3] [--jobs 2]
    python experiments/grow_regime.py --ladder-only --ladder-steps 7680   # the regime only (extends a ladder)
    python experiments/grow_regime.py --quick --out /tmp/grow-quick   # the same pipeline in seconds
    python experiments/grow_regime.py --model L4-4-64x4 --out experiments/out/grow-regime-w64 --ladder-steps 7680
Writes experiments/results/grow-ladder.{json,png} and grow-regime.{json,png} (--results), prints JSON; with a
--model other than the default the files are named after it (grow-ladder-L4-4-64x4.json, ...), and with an
--n other than the chosen rung, after that too (grow-regime-n960.json). Runs go to OUT/ladder and
OUT/nN/ARM/seedS. Narrower models do not flatten sooner in steps (the ladders of widths 64 and 32 drop
0.173 and 0.165 from 3,840 to 7,680 steps, width 128 0.186), so --model does not buy the flat point here.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from common import SHARED_DATA, command_line, parallel_map, run_recipe, train_seconds, val_curve
from grow_tiny import BATCH, MODEL, SEQ, _plot, _predicted, compare_arms, grow, recipe
from regime import flat_point, plot_flat

DELTA = 0.05  # nats per doubling of the baseline's steps: "flat" (stated before the ladder ran)
FIRST_RUNG = 240  # grow_tiny.py's N: the ladder starts where the tiny version stopped
QUICK = {"ladder_steps": 40, "every": 5, "first": 10, "delta": 10.0}  # tiny sizes: checks the pipeline only


def books(quick: bool) -> list[str]:
    if quick:
        from tinylm.data import default_corpus_files
        return [str(f) for f in default_corpus_files()]
    folder = SHARED_DATA / "corpora" / "gutenberg"
    found = sorted(str(f) for f in folder.glob("*.txt"))
    if not found:
        raise SystemExit(f"no books in {folder}: this experiment reads ../shared/data (use --quick for the "
                         "bundled books)")
    return found


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="experiments/out/grow-regime")
    p.add_argument("--results", default="experiments/results", help="where the JSON and plots go")
    p.add_argument("--model", default=MODEL["name"], help="a GPT-2 model name (4 layers: grow-S4 adds one a stage)")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--jobs", type=int, default=2, help="runs in parallel, one thread each")
    p.add_argument("--ladder-steps", type=int, default=3840, help="the ladder run's length (16 x the first rung)")
    p.add_argument("--n", type=int, default=None,
                   help="compare at this rung instead of the flat point (when the ladder never flattened and the "
                        "flat-or-last rung costs more than the session has; recorded in the JSON)")
    p.add_argument("--ladder-only", action="store_true", help="measure the regime, compare nothing (a longer "
                   "--ladder-steps extends the finished ladder run: its rate is constant)")
    p.add_argument("--quick", action="store_true", help="tiny sizes and the bundled books: seconds, for checks")
    args = p.parse_args()
    started = time.perf_counter()
    out, results_dir = Path(args.out), Path(args.results)
    model = {**MODEL, "name": args.model}
    tag = "" if args.model == MODEL["name"] else f"-{args.model}"  # the default model's files keep their names
    command = command_line()
    q = QUICK if args.quick else {"ladder_steps": args.ladder_steps, "every": 120, "first": FIRST_RUNG,
                                  "delta": DELTA}
    from tinylm.data import prepare_store
    store = out / "store"
    if not (store / "meta.json").exists():
        prepare_store(books(args.quick), "bpe:2048", store, val_fraction=0.02, seed=0, docs="paragraph")

    # 1. The regime: the baseline's curve at a constant rate, read at doubling lengths.
    ladder = out / "ladder" / "seed0"
    run_recipe(recipe(store, 0, q["ladder_steps"], [], q["every"], model), ladder)
    points = [(s, v) for s, _, v in val_curve(ladder)]
    regime = flat_point(points, q["first"], q["delta"])
    n = args.n or regime["n"]
    if n not in [r["n"] for r in regime["rungs"]]:
        raise SystemExit(f"--n {n}: choose a rung of the ladder ({', '.join(str(r['n']) for r in regime['rungs'])})")
    ladder_report = {"experiment": "grow-ladder", "command": command, "model": model, "tokens_per_step": BATCH * SEQ,
                     "schedule": "constant lr 1e-3, no warm-up", "seed": 0, "ladder_steps": q["ladder_steps"],
                     "curve": points, **regime}
    results_dir.mkdir(parents=True, exist_ok=True)
    (results_dir / f"grow-ladder{tag}.json").write_text(json.dumps(ladder_report, indent=1))
    plot_flat({"baseline, seed 0": points}, regime, results_dir / f"grow-ladder{tag}.png",
              f"Growth's regime ({args.model}): the baseline's validation loss at doubling steps")
    if args.ladder_only:
        print(json.dumps({k: regime[k] for k in ("n", "reached", "rungs")}, indent=1))
        return

    # 2. The arms at N.
    every, long = max(5, n // 10), n * 3 // 2

    def run_dir(arm: str, seed: int) -> Path:
        return ladder if (arm, seed) == ("baseline", 0) else out / f"n{n}" / arm / f"seed{seed}"

    arms = {"baseline": (n, []), "grow-S2": (long, grow(2, n)), "grow-S4": (long, grow(4, n))}
    todo = [(recipe(store, seed, steps, methods, q["every"] if arm == "baseline" else every, model),
             run_dir(arm, seed))
            for arm in ("grow-S2", "grow-S4", "baseline") for seed in range(args.seeds)
            for steps, methods in [arms[arm]] if run_dir(arm, seed) != ladder]
    parallel_map(run_recipe, todo, args.jobs)
    results, curves = compare_arms(run_dir, list(arms), args.seeds, n)
    report = {"experiment": "grow-regime", "command": command, "ladder": f"grow-ladder{tag}.json", "model": model,
              "corpus": "bundled books" if args.quick else "../shared/data/corpora/gutenberg (22 books)",
              "regime": {**{k: regime[k] for k in ("rule", "n", "reached")}, "compared_at": n},
              "n_steps_baseline": n, "incremental_runs_steps": long, "tokens_per_step": BATCH * SEQ,
              "seeds": args.seeds, "arms": results, "equal_compute_step_predicted": _predicted(store, n, model),
              "note": "the seed-0 baseline is the ladder run's first N steps (constant rate: the same run)"}
    report["wall_seconds"] = round(time.perf_counter() - started, 1)  # this invocation, runs reused included
    report["train_seconds"] = train_seconds({run_dir(a, s) for a in arms for s in range(args.seeds)} - {ladder})
    report["ladder_train_seconds"] = train_seconds([ladder])  # the seed-0 baseline's run, to the ladder's end
    name = f"grow-regime{tag}" + ("" if n == regime["n"] else f"-n{n}")  # a rung other than the chosen one
    (results_dir / f"{name}.json").write_text(json.dumps(report, indent=1))
    _plot(curves, results_dir / f"{name}.png", n,
          title=f"Growth of {args.model} at N = {n} (Gutenberg, {args.seeds} seeds; "
                f"{'the flat point' if regime['reached'] and n == regime['n'] else 'the ladder never flattened'})")
    print(json.dumps({"regime": report["regime"], "arms": {arm: {k: {"mean": round(v["mean"], 4),
                                                                     "std": round(v["std"], 4)}
                                                                 for k, v in r.items() if k != "runs"}
                                                           for arm, r in results.items()},
                      "wall_seconds": report["wall_seconds"]}, indent=1))


if __name__ == "__main__":
    main()
