"""Input that never waits: the training thread's wait for data (`data_s`) with 0, 1 and 2 `data.workers`.

A real run (tinylm.runs.execute, the one loop) of a tiny BERT on MLM batches from a store of the bundled
corpus (bert-base-uncased), logged every step. Every batch also costs `--delay-ms` of sleep, standing in
for a slow store (text tokenized on the fly, a network file system): the delay is patched into the
batches' `batch_at`, which the training thread and every worker call alike (workers are forked, so they
inherit the patch). With 0 workers each step waits the whole batch cost; with N workers the batches are
computed ahead and `data_s` falls to about 0 as long as N workers keep up with one step's compute.

Prints JSON: per worker count, the median and mean `data_s` per step and step time (s) over the steps
after `--skip` (worker start-up), and tokens/s; also the batch cost measured alone, in-thread.

    python bench/data_workers.py --json
    python bench/data_workers.py --json --delay-ms 0 --batch-size 64     # the MLM collator's own cost
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch

from tinylm.data import prepare_store
from tinylm.data.batches import MLMBatches, training_batches
from tinylm.data.store import TokenStore
from tinylm.package_files import package_file
from tinylm.rundir.metrics import read_metrics
from tinylm.runs.execute import execute
from tinylm.train.recipe import recipe_from_dict


def slow_batches(delay_s: float) -> None:
    """Every MLM batch costs `delay_s` more, in the training thread and in every (forked) worker alike."""
    if delay_s <= 0:
        return
    batch_at = MLMBatches.batch_at

    def slow(self, position):
        time.sleep(delay_s)
        return batch_at(self, position)

    MLMBatches.batch_at = slow


def make_store(root: Path) -> Path:
    text = gzip.decompress(package_file("assets", "corpus", "PeterPan.txt.gz").read_bytes()).decode("utf-8")
    (root / "peter.txt").write_text(text)
    return prepare_store([str(root / "peter.txt")], "bert-base-uncased", root / "store", val_fraction=0.05,
                         seed=0, docs="paragraph", workers=0).path


def recipe(store: Path, workers: int, args) -> object:
    return recipe_from_dict({
        "data": {"store": str(store), "sampler": "mlm", "seq_len": args.seq_len, "workers": workers},
        "model": {"name": args.model, "flavour": "bert"},
        "train": {"duration": f"{args.steps} steps", "batch_size": args.batch_size, "log_every": 1,
                  "precision": "fp32", "threads": args.threads, "lr": 1e-3},
        "eval": {"every": 0, "windows": 8, "batch_size": 8}, "checkpoint": {"every": 0}})


def batch_cost(store: Path, args) -> float:
    r = recipe(store, 0, args)
    batches = training_batches(TokenStore.open(store), r.data, args.batch_size)
    t = time.perf_counter()
    for position in range(10):
        batches.batch_at(position)
    return (time.perf_counter() - t) / 10


def measure(store: Path, workers: int, args, root: Path) -> dict:
    out = root / f"run-{workers}"
    summary = execute(recipe(store, workers, args), out)
    steps = [r for r in read_metrics(out / "metrics.jsonl") if "loss" in r and "data_s" in r][args.skip:]
    data = [r["data_s"] for r in steps]
    step = [r["data_s"] + r["compute_s"] for r in steps]
    return {"workers": workers, "steps_measured": len(steps),
            "data_s_median": statistics.median(data), "data_s_mean": statistics.fmean(data),
            "step_s_median": statistics.median(step), "step_s_mean": statistics.fmean(step),
            "tokens_per_s_median": statistics.median(r["tokens_per_s"] for r in steps),
            "complete": summary["complete"]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--delay-ms", type=float, default=50.0, help="extra cost of every batch (a slow store)")
    p.add_argument("--model", default="L1-2-32x2", help="an encoder spec (flavour bert)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--seq-len", type=int, default=64)
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--skip", type=int, default=5, help="first steps left out (workers starting)")
    p.add_argument("--threads", type=int, default=1, help="torch threads of the training process")
    p.add_argument("--json", action="store_true", help="print only the JSON (it prints nothing else)")
    args = p.parse_args()
    slow_batches(args.delay_ms / 1000)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        store = make_store(root)
        cost = batch_cost(store, args)
        results = [measure(store, n, args, root) for n in args.workers]
    report = {"bench": "data_workers", "model": args.model, "batch_size": args.batch_size, "seq_len": args.seq_len,
              "delay_ms": args.delay_ms, "batch_cost_s": cost, "threads": args.threads, "cpus": os.cpu_count(),
              "load_avg_1m": os.getloadavg()[0], "machine": platform.processor() or platform.machine(),
              "torch": torch.__version__, "results": results}
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
