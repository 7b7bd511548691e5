"""The tiny encoders' pretraining gap in the paper's regime: MLM pretraining run until its validation loss
has flattened, and each arm fine-tuned at its own learning rate.  (Gross et al., Table 5: pretraining
raises AG News accuracy, the more the larger W_S; encoders_tiny.py found the opposite after 300 MLM
steps and one fine-tuning rate tuned on scratch models.)

1. Regime: the 4-block encoder (encoders_tiny.DEEP) pretrained on the largest W_S at a constant rate
   after a 100-step warm-up, read at doubling lengths (experiments/regime.py, DELTA below). S is the
   first length where doubling lowers the validation MLM loss by less than DELTA, or the ladder's last
   rung when it never flattens (recorded as not reached).
2. Every W_S is pretrained S steps with that recipe (the largest W_S: the ladder's checkpoint at S).
3. Each pretrained encoder and the same architecture from scratch are fine-tuned on AG News with the same
   protocol: `tinylm finetune --lr-grid` (with `--scratch` for the scratch arm, once: no W_S changes it),
   each arm choosing its rate on a validation tenth of the train items, then --seeds seeds on the untouched
   test items.

    python experiments/encoders_regime.py [--out experiments/out/encoders] [--seeds 3] [--jobs 3]
    python experiments/encoders_regime.py --ladder-only --ladder-steps 6000   # the regime only (extends a ladder)
    python experiments/encoders_regime.py --quick --out /tmp/enc-quick   # the same pipeline, tiny
Writes experiments/results/encoders-ladder.{json,png} and encoders-regime.json (--results), prints JSON.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from common import (SHARED_DATA, command_line, finetune_report, parallel_map, run_recipe, val_curve,
                    wikipedia_store)
from encoders_tiny import DEEP, pretrain_recipe, token_stats
from regime import flat_point, plot_flat

DELTA = 0.05  # nats of validation MLM loss per doubling of the pretraining steps: "flattened"
FIRST_RUNG = 150
FULL = {"ladder_steps": 3000, "every": 150, "first": FIRST_RUNG, "delta": DELTA, "per_label": (250, 200),
        "epochs": 8, "lr_grid": "3e-4,1e-3,3e-3"}
QUICK = {"ladder_steps": 40, "every": 10, "first": 20, "delta": 10.0, "per_label": (20, 10), "epochs": 1,
         "lr_grid": "1e-3,3e-3"}


def regime_recipe(store: Path, steps: int, every: int) -> dict:
    """encoders_tiny's pretraining at a constant rate after warm-up: an S-step run is the first S steps of
    a longer one, so the ladder's checkpoint at S is the largest W_S's pretrained encoder."""
    r = pretrain_recipe(store, DEEP, steps)
    r["train"].update(schedule="constant", warmup=min(100, steps // 4))
    r["eval"]["every"] = every
    r["checkpoint"] = {"every": 2 * every, "keep": 20}
    return r


def finetune(base: Path, task: str, q: dict, seeds: int, arm: str) -> dict:
    """One arm's `tinylm finetune --lr-grid` report (`arm`: "pretrained", or "scratch": the same architecture
    from random weights, which no W_S changes, so it is fine-tuned once)."""
    return finetune_report(base, task, ["--train-per-label", str(q["per_label"][0]), "--test-per-label",
                                        str(q["per_label"][1]), "--lr-grid", q["lr_grid"], "--seeds", str(seeds),
                                        "--epochs", str(q["epochs"])] + (["--scratch"] if arm == "scratch" else []))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="experiments/out/encoders")
    p.add_argument("--results", default="experiments/results")
    p.add_argument("--seeds", type=int, default=3, help="fine-tuning seeds (each arm, each W_S)")
    p.add_argument("--jobs", type=int, default=3, help="processes in parallel")
    p.add_argument("--sizes", type=int, nargs="+", default=[1000, 4000, 14000], help="W_S values (paragraphs)")
    p.add_argument("--ladder-steps", type=int, default=FULL["ladder_steps"],
                   help="the ladder run's length (a longer one extends the finished ladder: its rate is constant)")
    p.add_argument("--ladder-only", action="store_true", help="measure the regime, compare nothing")
    p.add_argument("--quick", action="store_true", help="tiny sizes: seconds, for checks")
    args = p.parse_args()
    started = time.perf_counter()
    q = QUICK if args.quick else {**FULL, "ladder_steps": args.ladder_steps}
    out, results_dir = Path(args.out), Path(args.results)
    from tinylm.data.overlap import random_paragraphs
    from tinylm.data.store import TokenStore
    from tinylm.data.subsets import write_documents
    store = wikipedia_store(out)
    full = TokenStore.open(store)
    sizes = sorted(args.sizes)
    subsets = {w: out / f"ws-{w}" for w in sizes}
    for w, folder in subsets.items():
        if not (folder / "meta.json").exists():
            write_documents(full, random_paragraphs(full, w, seed=0), folder, {"paragraphs": w, "seed": 0})

    # 1. The regime: MLM validation loss of the largest W_S at doubling lengths.
    ladder = out / "ladder" / f"ws{sizes[-1]}"
    run_recipe(regime_recipe(subsets[sizes[-1]], q["ladder_steps"], q["every"]), ladder)
    points = [(s, v) for s, _, v in val_curve(ladder)]
    regime = flat_point(points, q["first"], q["delta"])
    s_steps = regime["n"]
    results_dir.mkdir(parents=True, exist_ok=True)
    (results_dir / "encoders-ladder.json").write_text(json.dumps(
        {"experiment": "encoders-ladder", "command": command_line(), "model": DEEP, "W_S": sizes[-1],
         "tokens_per_step": 32 * 64,
         "schedule": "constant lr 2e-3 after a 100-step warm-up", "ladder_steps": q["ladder_steps"],
         "curve": points, **regime}, indent=1))
    plot_flat({f"W_S = {sizes[-1]}": points}, regime, results_dir / "encoders-ladder.png",
              "Encoders' regime: validation MLM loss at doubling pretraining steps", "pretraining step")
    if args.ladder_only:
        print(json.dumps({k: regime[k] for k in ("n", "reached", "rungs")}, indent=1))
        return

    # 2. Pretraining every W_S for S steps (the largest: the ladder's checkpoint at S).
    bases = {w: out / "pretrain-regime" / f"ws{w}" for w in sizes[:-1]}
    parallel_map(run_recipe, [(regime_recipe(subsets[w], s_steps, q["every"]), d) for w, d in bases.items()],
                 args.jobs)
    bases[sizes[-1]] = ladder / "checkpoints" / f"step-{s_steps:08d}"
    pretrain_val = {w: dict((s, v) for s, _, v in val_curve(d if w != sizes[-1] else ladder)).get(s_steps)
                    for w, d in bases.items()}

    # 3. Fine-tuning, one protocol for both arms.
    task = f"agnews:{SHARED_DATA / 'classification/agnews/test.csv'}"
    arms = [(w, "pretrained") for w in sizes] + [(sizes[-1], "scratch")]
    reports = dict(zip(arms, parallel_map(finetune, [(bases[w], task, q, args.seeds, arm) for w, arm in arms],
                                          args.jobs)))
    by_ws = []
    for w in sizes:
        r = {arm: reports[(w if arm == "pretrained" else sizes[-1], arm)] for arm in ("pretrained", "scratch")}
        r = {**{arm: r[arm][arm] for arm in r}, "lr_grid": {arm: r[arm]["lr_grid"][arm] for arm in r}}
        pre, scratch = r["pretrained"]["values"], r["scratch"]["values"]
        by_ws.append({"W_S": w, "pretrain_steps": s_steps, "pretrain_val_mlm_loss": pretrain_val[w],
                      **token_stats(subsets[w], task, None, q["per_label"]),
                      "pretrained": {"values": pre, "chosen_lr": r["lr_grid"]["pretrained"]["chosen"],
                                     "validation_accuracy_by_lr": r["lr_grid"]["pretrained"]["validation_accuracy"]},
                      "scratch": {"values": scratch, "chosen_lr": r["lr_grid"]["scratch"]["chosen"],
                                  "validation_accuracy_by_lr": r["lr_grid"]["scratch"]["validation_accuracy"]},
                      "gap": [a - b for a, b in zip(pre, scratch)], "base": str(bases[w])})
    report = {"experiment": "encoders-regime", "command": command_line(), "ladder": "encoders-ladder.json",
              "model": DEEP, "task": "AG News", "per_label": q["per_label"],
              "epochs": q["epochs"], "lr_grid": q["lr_grid"], "seeds": args.seeds,
              "regime": {**{k: regime[k] for k in ("rule", "n", "reached")}, "pretrain_steps": s_steps},
              "by_ws": by_ws, "wall_seconds": round(time.perf_counter() - started, 1)}
    (results_dir / "encoders-regime.json").write_text(json.dumps(report, indent=1))
    print(json.dumps({"regime": report["regime"], "by_ws": [
        {"W_S": b["W_S"], "pretrained": b["pretrained"]["values"], "scratch": b["scratch"]["values"],
         "lr": (b["pretrained"]["chosen_lr"], b["scratch"]["chosen_lr"])} for b in by_ws],
        "wall_seconds": report["wall_seconds"]}, indent=1))


if __name__ == "__main__":
    main()
