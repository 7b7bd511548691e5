"""The run index: `tinylm runs DIR --json` over many run directories, cold, warm and after a few changed.

Makes `--runs` synthetic run directories shaped as `tinylm train` leaves them (a resolved config.yaml, a
metrics.jsonl of `--lines` log lines with an evaluation every 50 and a few method events, summary.json, a
BLiMP eval/blimp.json with 67 paradigms, a sealed checkpoint; most finished, some stopped or failed), then
times the command's own function (`tinylm.cli.main.main`, output to /dev/null) in this process:

- cold: no index (every run read and indexed);
- warm: the index present, nothing changed (the median of `--repeat`);
- touched: `--touch` runs' metrics.jsonl grown by a log line (those re-read, from where their scan stopped);

and the warm listing once more as a real subprocess (`python -m tinylm.cli.main runs DIR --json`: Python's
and tinylm's start-up included), beside that start-up alone. Each with its CPU seconds (user + system): on
a shared machine the wall time also counts waiting for a core, which `load_average_1min` hints at. The
goal: a warm listing of 1,000 runs in under a second. Prints JSON.

    python bench/run_index.py --runs 1000 --lines 300
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

CONFIG = {"data": {"store": None, "sources": ["builtin:children"], "tokenizer": "gpt2", "docs": "paragraph",
                   "val_fraction": 0.05, "sampler": "windows", "seq_len": 128, "seed": 0, "split_seed": 0},
          "model": {"flavour": "gemma", "name": "L4-4(2)-128x4-32", "vocab_size": "auto"},
          "train": {"duration": "{steps} steps", "batch_size": 12, "grad_accum": 1, "lr": 0.00135,
                    "weight_decay": 1.0, "betas": [0.9, 0.999], "eps": 1e-8, "clip": 1.0, "schedule": "linear",
                    "warmup": 0, "precision": "auto", "compile": False, "device": "auto", "seed": 0,
                    "log_every": 1, "on_nan": "stop"},
          "eval": {"every": 50, "windows": 64, "batch_size": 16, "seed": 1234},
          "checkpoint": {"every": 100, "keep": 2}}
METHODS = ([], [{"sleep": {"episode": "150 steps", "policy": "paper"}}], [{"forget": {"every": 100}}],
           [{"grow": {"stages": 4}}], [{"sleep": {"episode": "100 steps"}}, {"distill": {"alpha": 0.5}}])


def make_run(path: Path, i: int, lines: int) -> None:
    """One run directory: run i finishes, except every 10th (stopped) and every 25th (diverged)."""
    path.mkdir(parents=True)
    steps = lines
    stopped, failed = i % 10 == 9, i % 25 == 24
    done = steps if not (stopped or failed) else steps * 2 // 3
    config = {"name": f"recipe-{i % 7}", **CONFIG, "methods": METHODS[i % len(METHODS)]}
    config["train"] = {**CONFIG["train"], "duration": f"{steps} steps", "seed": i}
    (path / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    records, val, best = [], 9.0, None
    for step in range(1, done + 1):
        loss = 9.0 - 4.0 * step / steps + (i % 13) * 0.01
        records.append({"step": step, "tokens": step * 1536, "flops": step * 6.9e10, "lr": 1.35e-3 * (1 - step / steps),
                        "loss": loss, "grad_norm": 1.2, "tokens_per_s": 4100.5, "data_s": 0.002,
                        "compute_s": 0.37, "memory_mb": 1045.6, "flops_per_s": 1.8e11})
        if step % 50 == 0 or step == steps:
            val = loss + 0.05
            best = val if best is None else min(best, val)
            records.append({"step": step, "tokens": step * 1536, "flops": step * 6.9e10, "val_loss": val,
                            "val_ppl": 2.718 ** val})
        if step % 100 == 0:
            records.append({"event": "reset_optimizer", "step": step, "tokens": step * 1536, "flops": step * 6.9e10,
                            "params": 42, "all": True})
    if failed:
        records.append({"event": "diverged", "step": done, "tokens": done * 1536, "flops": done * 6.9e10,
                        "reason": "training diverged at step ..."})
    elif not stopped:
        records.append({"event": "end", "step": steps, "val_loss": val, "val_ppl": 2.718 ** val})
    (path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    if not failed:
        (path / "summary.json").write_text(json.dumps({
            "name": config["name"], "out_dir": str(path), "complete": not stopped, "steps": done, "total_steps": steps,
            "tokens": done * 1536, "flops": done * 6.9e10, "parameters": 7417088, "val_loss": val, "best_val_loss": best,
            "val_ppl": 2.718 ** val, "loss": records[-2].get("loss"), "device": "cpu", "precision": "bf16",
            "processes": 1, "wall_s": done * 0.4, "session_wall_s": done * 0.4}, indent=1))
    ckpt = path / "checkpoints" / f"step-{done - done % 100:08d}"
    ckpt.mkdir(parents=True)
    (ckpt / "state.json").write_text(json.dumps({"counters": {"step": done - done % 100}}))
    (path / "checkpoints" / "latest").write_text(ckpt.name)
    if not (stopped or failed):
        (path / "eval").mkdir()
        paradigms = {f"paradigm_{k}": {"accuracy": 0.5 + k / 200, "pairs": 1000} for k in range(67)}
        (path / "eval" / "blimp.json").write_text(json.dumps({
            "mean": 0.55 + (i % 17) / 100, "pair_accuracy": 0.6, "pairs": 67000, "paradigm_count": 67,
            "paradigms": paradigms}, indent=1))


def timed_listing(root: Path) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one `tinylm runs ROOT --json` in this process."""
    from tinylm.cli.main import main

    with open(os.devnull, "w") as null, contextlib.redirect_stdout(null):
        start, cpu = time.perf_counter(), time.process_time()
        assert main(["runs", str(root), "--json"]) == 0
        return time.perf_counter() - start, time.process_time() - cpu


def timed_subprocess(cmd: list[str]) -> tuple[float, float, str]:
    """(wall seconds, CPU seconds: user + system, stdout) of a child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime, done.stdout


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=1000)
    p.add_argument("--lines", type=int, default=300, help="log lines per metrics.jsonl (one per step)")
    p.add_argument("--touch", type=int, default=10)
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="tinylm-run-index-"))
    try:
        measure(args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def measure(args, work: Path) -> None:
    os.environ["TINYLM_CACHE"] = str(work / "cache")
    root = work / "runs"
    start = time.perf_counter()
    for i in range(args.runs):
        make_run(root / f"sweep-{i // 100}" / f"run-{i:04d}", i, args.lines)
    made_s = time.perf_counter() - start
    size = sum(f.stat().st_size for f in root.rglob("*") if f.is_file())

    from tinylm.rundir import run_facts

    reads = []
    real = run_facts.read_facts
    run_facts.read_facts = lambda run, *a: reads.append(run) or real(run, *a)
    cold = timed_listing(root)
    cold_reads, reads[:] = len(reads), []
    warm = [timed_listing(root) for _ in range(args.repeat)]
    warm_reads, reads[:] = len(reads), []
    touched = sorted(root.glob("*/run-*"))[:: max(1, args.runs // max(1, args.touch))][:args.touch]
    for run in touched:
        with open(run / "metrics.jsonl", "a") as f:
            f.write(json.dumps({"step": 10_000, "tokens": 1, "flops": 1.0, "loss": 3.0}) + "\n")
    after_touch = timed_listing(root)
    touch_reads = len(reads)
    run_facts.read_facts = real

    sub_wall, sub_cpu, out = timed_subprocess([sys.executable, "-m", "tinylm.cli.main", "runs", str(root), "--json"])
    listed = len(json.loads(out))
    start_wall, start_cpu, _ = timed_subprocess([sys.executable, "-c", "import tinylm.cli.main as m; m.build_parser()"])
    index = Path(os.environ["TINYLM_CACHE"]) / "run-index.sqlite"
    median = sorted(warm)[len(warm) // 2]
    print(json.dumps({
        "runs": args.runs, "lines_per_metrics": args.lines, "runs_bytes": size, "listed": listed,
        "index_bytes": index.stat().st_size, "make_runs_s": round(made_s, 2),
        "cold_s": round(cold[0], 3), "cold_cpu_s": round(cold[1], 3), "cold_runs_read": cold_reads,
        "warm_s": round(median[0], 3), "warm_cpu_s": round(median[1], 3),
        "warm_s_all": [round(w, 3) for w, _ in warm], "warm_runs_read": warm_reads,
        "touched": len(touched), "after_touch_s": round(after_touch[0], 3),
        "after_touch_cpu_s": round(after_touch[1], 3), "after_touch_runs_read": touch_reads,
        "subprocess_warm_s": round(sub_wall, 3), "subprocess_warm_cpu_s": round(sub_cpu, 3),
        "subprocess_startup_only_s": round(start_wall, 3), "subprocess_startup_only_cpu_s": round(start_cpu, 3),
        "goal_warm_under_1s": median[0] < 1.0,
        "load_average_1min": round(os.getloadavg()[0], 2),
        "cpu": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
        "python": platform.python_version()}, indent=1))


if __name__ == "__main__":
    main()
