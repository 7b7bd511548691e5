"""Does pretraining lower fine-tuned accuracy on tiny encoders, or did one learning rate for both arms?

`experiments/results/encoders-tiny.json` found every pretrained tiny BERT below the same architecture
from scratch on AG News (gap -0.21 to -0.37) with one fine-tuning rate (1e-3) for both arms. Here each
arm chooses its own rate from a grid, on a validation tenth carved from the train items (`tinylm
finetune --gap --lr-grid`), and the two are compared over seeds on the untouched test half.

Encoder: a 2-block, 64-wide BERT (seq 64) pretrained with MLM on the 16,316 Wikipedia sentences in
../shared/data/corpora/wikipedia-sentences (bert-base-uncased tokenizer, as the committee paper).
Task: AG News (../shared/data/classification/agnews/test.csv), --per-label train/test items per label.

    nice python experiments/finetune_lr_grid.py [--out experiments/out/lr-grid] [--seeds 5]
Prints JSON and writes it to experiments/results/finetune-lr-grid.json. ~15 minutes of fine-tuning on one
busy core (the pretraining, 500 steps, is reused when --out holds it).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from common import finetune_report, run_recipe, wikipedia_store

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
MODEL = "L2-2-64x4"


def pretrain_recipe(store: Path, steps: int) -> dict:
    return {"name": "lr-grid-encoder", "data": {"store": str(store), "sampler": "mlm", "seq_len": 64, "seed": 0},
            "model": {"name": MODEL, "flavour": "bert", "max_seq_len": 64, "dropout": 0.1},
            "train": {"duration": f"{steps} steps", "batch_size": 32, "lr": 2e-3, "warmup": steps // 20,
                      "weight_decay": 0.01, "log_every": 50, "seed": 0,
                      "precision": "fp32"},  # bf16 on this CPU ran at 2/3 of fp32's speed (the 30k-vocab MLM head)
            "eval": {"every": 0, "windows": 64, "batch_size": 32}, "checkpoint": {"every": 0}}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--out", default="experiments/out/lr-grid")
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--pretrain-steps", type=int, default=500)
    p.add_argument("--per-label", type=int, nargs=2, default=[250, 200], metavar=("TRAIN", "TEST"))
    p.add_argument("--epochs", type=float, default=8)
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads of the fine-tuning (on 2 shared cores, 2 threads ran 17x slower than 1)")
    p.add_argument("--lr-grid", default="1e-4,3e-4,1e-3,3e-3")
    p.add_argument("--result", default="experiments/results/finetune-lr-grid.json")
    args = p.parse_args()
    started = time.perf_counter()
    out = Path(args.out)
    run = out / "pretrain"
    pretrain = run_recipe(pretrain_recipe(wikipedia_store(out), args.pretrain_steps), run)
    command = ["tinylm", "finetune", str(run), "--task", f"agnews:{SHARED / 'classification/agnews/test.csv'}",
               "--train-per-label", str(args.per_label[0]), "--test-per-label", str(args.per_label[1]),
               "--gap", "--lr-grid", args.lr_grid, "--seeds", str(args.seeds), "--epochs", str(args.epochs),
               "--json"]
    report = finetune_report(run, command[4], command[5:-1], args.threads)
    arms = {kind: {"accuracy_mean": report[kind]["mean"], "accuracy_std": report[kind]["std"],
                   "values": report[kind]["values"], "chosen_lr": report["lr_grid"][kind]["chosen"],
                   "validation_accuracy_by_lr": report["lr_grid"][kind]["validation_accuracy"],
                   "per_class_accuracy": report[kind]["per_class_accuracy"]}
            for kind in ("pretrained", "scratch")}
    result = {"experiment": "finetune-lr-grid", "command": " ".join(command), "model": MODEL,
              "pretrain_steps": args.pretrain_steps, "pretrain_final": {k: pretrain.get(k) for k in
                                                                       ("val_loss", "steps", "tokens", "wall_s")},
              "task": report["task"]["name"], "task_sha256": report["task"]["files"]["data"]["sha256"],
              "train_items": report["train"], "test_items": report["test"], "seeds": args.seeds,
              "epochs": args.epochs, "threads": args.threads, "lr_grid": report["lr_grid"]["values"], "baseline": report["baseline"],
              **arms, "gap": report["gap"],
              "wall_seconds": round(time.perf_counter() - started, 1)}  # this invocation; a reused pretraining: 0
    Path(args.result).parent.mkdir(parents=True, exist_ok=True)
    Path(args.result).write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
