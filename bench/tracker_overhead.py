"""What `log: [tensorboard | wandb | mlflow]` costs a training run: time per step with and without each tracker.

A run logs to its trackers only on log steps and events (every line of metrics.jsonl, nothing else), so
the cost is a few calls every `train.log_every` steps. Measured two ways, over real runs of a recipe
(forgetter-tiny by default, cut to `--steps` steps, validation and checkpoints only at the end):

* `overhead_pct`: the time spent inside the trackers' calls during the training loop (a timer around the
  fan-out, `tinylm.tracking.fanout.Trackers.write`) over the loop's wall time: the direct measure, which
  machine noise barely moves;
* `wall_overhead_pct`: the median wall time per step of the runs with the tracker against those without,
  the runs interleaved (`none` and each tracker in turn, the order rotated every round) so that noise on
  a shared machine hits all alike; it also holds what runs beside the loop (W&B's service process, TB's
  writer thread), and on a busy 2-core machine it is noisier than the effect.

Starting a tracker (importing its library, W&B's service, MLflow's store) and closing it (flushing) are
once per session, not per step: `start_s` and `close_s`. W&B runs offline (no network, no account).

    python bench/tracker_overhead.py [--recipe forgetter-tiny] [--steps 100] [--rounds 3] [--threads 1] [--set K=V]

bench/results/tracker-overhead-forgetter-tiny-seq32-batch4-2core.json: `--steps 100 --rounds 3 --set
data.seq_len=32 --set train.batch_size=4` (forgetter-tiny's own 12 x 128 took 2-3 s a step on the shared
2-core machine), a log line every 20 steps: 0.05% (TensorBoard), 0.22% (W&B offline), 0.14% (MLflow) of
the loop's time in the trackers' calls; the wall times per step moved by +-5% between the interleaved runs,
machine noise far above the effect.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

TRACKERS = ("tensorboard", "wandb", "mlflow")


class Timers:
    """Seconds spent in the trackers' calls, their start and their close, per run."""

    def __init__(self):
        self.reset()

    def reset(self):
        self.write_s, self.writes, self.start_s, self.close_s = 0.0, 0, 0.0, 0.0

    def install(self):
        import tinylm.train.build as build
        from tinylm.tracking.fanout import Trackers

        write, close, open_trackers = Trackers.write, Trackers.close, build.open_trackers

        def timed_write(trackers, record):
            t = time.perf_counter()
            write(trackers, record)
            self.write_s += time.perf_counter() - t
            self.writes += 1

        def timed_close(trackers, status="finished"):
            t = time.perf_counter()
            close(trackers, status)
            self.close_s += time.perf_counter() - t

        def timed_open(*args, **kwargs):
            t = time.perf_counter()
            trackers = open_trackers(*args, **kwargs)
            self.start_s += time.perf_counter() - t
            return trackers

        Trackers.write, Trackers.close, build.open_trackers = timed_write, timed_close, timed_open


def one_run(recipe_name: str, overrides: list[str], log: list[str], out: Path, timers: Timers) -> dict:
    import dataclasses

    from tinylm.runs.execute import execute
    from tinylm.train.recipe import load_recipe

    recipe = dataclasses.replace(load_recipe(recipe_name, overrides), log=log)
    marks = {}

    def on_start(run):
        marks["start"], marks["step0"] = time.perf_counter(), run.step

    def on_step(run, record):
        marks["end"], marks["step"] = time.perf_counter(), run.step

    timers.reset()
    execute(recipe, out, on_start=on_start, on_step=on_step)
    loop_s = marks["end"] - marks["start"]
    steps = marks["step"] - marks["step0"]
    return {"ms_per_step": 1000 * loop_s / steps, "loop_s": loop_s, "tracker_s": timers.write_s,
            "lines": timers.writes, "start_s": timers.start_s, "close_s": timers.close_s}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--recipe", default="forgetter-tiny")
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=1, help="train.threads (0: torch's default)")
    p.add_argument("--trackers", nargs="+", default=list(TRACKERS), choices=TRACKERS)
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    args = p.parse_args()
    os.environ.setdefault("WANDB_MODE", "offline")
    os.environ.setdefault("WANDB_SILENT", "true")
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    overrides = [f"train.duration={args.steps} steps", "eval.every=0", "eval.windows=8", "checkpoint.every=0",
                 f"train.threads={args.threads}", *args.overrides]
    timers = Timers()
    timers.install()
    configs = ["none", *args.trackers]
    runs: dict[str, list[dict]] = {c: [] for c in configs}
    with tempfile.TemporaryDirectory() as tmp:
        one_run(args.recipe, overrides, [], Path(tmp) / "warmup", timers)  # the store prepared, caches warm
        for r in range(args.rounds):
            order = configs[r % len(configs):] + configs[:r % len(configs)]
            for config in order:
                log = [] if config == "none" else [config]
                runs[config].append(one_run(args.recipe, overrides, log, Path(tmp) / f"{config}-{r}", timers))
    from tinylm.train.recipe import load_recipe

    recipe = load_recipe(args.recipe, overrides)
    base = statistics.median(x["ms_per_step"] for x in runs["none"])
    results = {"none": {"ms_per_step": round(base, 2)}}
    for config in args.trackers:
        rows = runs[config]
        per_step = statistics.median(x["ms_per_step"] for x in rows)
        results[config] = {
            "ms_per_step": round(per_step, 2),
            "wall_overhead_pct": round(100 * (per_step - base) / base, 3),
            "overhead_pct": round(statistics.median(100 * x["tracker_s"] / x["loop_s"] for x in rows), 4),
            "ms_per_line": round(statistics.median(1000 * x["tracker_s"] / max(1, x["lines"]) for x in rows), 3),
            "lines_per_run": rows[0]["lines"],
            "start_s": round(statistics.median(x["start_s"] for x in rows), 2),
            "close_s": round(statistics.median(x["close_s"] for x in rows), 2),
        }
    print(json.dumps({"benchmark": "tracker overhead", "recipe": args.recipe, "model": recipe.model["name"],
                      "overrides": args.overrides, "steps": args.steps, "log_every": recipe.train.log_every,
                      "batch_size": recipe.train.batch_size, "seq_len": recipe.data.seq_len, "rounds": args.rounds,
                      "threads": args.threads, "results": results}, indent=1))


if __name__ == "__main__":
    main()
