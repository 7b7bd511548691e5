"""Shared helpers for the tiny reproductions: run recipes with seeds, read curves, summarise, plot."""

from __future__ import annotations

import json
import os
import shlex
import statistics
import subprocess
import sys
from pathlib import Path

from tinylm.duration import parse_duration
from tinylm.runs.execute import execute
from tinylm.rundir.checkpoints import latest_checkpoint
from tinylm.rundir.metrics import read_metrics
from tinylm.train.build import run_changes
from tinylm.train.recipe import recipe_from_dict

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"  # this project's public data


def run_recipe(data: dict, out: Path) -> dict:
    """Train (or resume, or reuse a finished) run; returns its summary.

    A run already in `out` is taken up only when the recipe is its own but for the length: another
    recipe there (grow's stages laid out for another N, other methods) is refused, never resumed with the
    new values. A finished run shorter than the recipe is extended only at a constant rate, where its
    first steps are the longer run's (a ladder grown by a later invocation); any other change of length
    is refused.
    """
    out = Path(out)
    recipe = recipe_from_dict(data)
    if (out / "config.yaml").exists():
        differ = [k for k in run_changes(out, recipe) if k != "train.duration"]
        if differ:
            raise SystemExit(f"{out} holds another run (its recipe differs in {', '.join(differ)}): delete it or "
                             "choose another --out")
    done = out / "summary.json"
    if done.exists() and json.loads(done.read_text()).get("complete"):
        summary = json.loads(done.read_text())
        wanted = _steps(data)
        if wanted is None or wanted == summary["total_steps"]:
            return summary
        if data["train"].get("schedule") != "constant" or wanted < summary["total_steps"]:
            raise SystemExit(f"{out} holds a finished {summary['total_steps']}-step run, not {wanted} steps: "
                             "only a constant-rate run can be extended; delete it or choose another --out")
    resume = latest_checkpoint(out) is not None
    return execute(recipe, out, resume=resume, force=True)  # force: only the length can differ by now


def command_line() -> str:
    """This invocation as a rerun command for the JSON (`python experiments/grow_regime.py --n 960`)."""
    return " ".join(["python", f"experiments/{Path(sys.argv[0]).name}", *map(shlex.quote, sys.argv[1:])])


def _steps(data: dict) -> int | None:
    """The recipe's length in steps when its duration is given in steps (tinylm's own parser)."""
    d = parse_duration(data["train"].get("duration", ""))
    return int(d.to_steps(1)) if d.unit == "steps" else None


def parallel_map(fn, items: list, jobs: int) -> list:
    """`[fn(*item) for item in items]`, in `jobs` processes sharing the cores when jobs > 1.

    Tiny models leave a core mostly idle inside one process; one seed per core is faster on a
    small CPU than one run using both. Each process gets its share of the cores (at least one):
    torch's default of every core in every process oversubscribes them (forgetter-tiny fell from
    413 to 44 tokens/s). A recipe's own `train.threads` still wins. Results keep the order of `items`.
    """
    if jobs <= 1:
        return [fn(*item) for item in items]
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from tinylm.train.build import available_cpus
    with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn"),
                             initializer=_set_threads, initargs=(threads_per_job(jobs, available_cpus()),)) as pool:
        return list(pool.map(fn, *zip(*items)))


def threads_per_job(jobs: int, cpus: int) -> int:
    """The cores divided among `jobs` processes, at least one each."""
    return max(1, cpus // max(1, jobs))


def _set_threads(threads: int) -> None:
    import torch
    torch.set_num_threads(threads)


def finetune_report(base: Path, task: str, options: list[str], threads: int = 1) -> dict:
    """`tinylm finetune BASE --task TASK OPTIONS... --json` in a process of `threads` torch threads: its report.

    (On 2 shared cores, fine-tuning with 2 threads ran 17x slower than with 1: finetune_lr_grid.py.)"""
    done = subprocess.run([sys.executable, "-m", "tinylm.cli.main", "finetune", str(base), "--task", task,
                           *options, "--json"], check=True, stdout=subprocess.PIPE, text=True,
                          env={**os.environ, "OMP_NUM_THREADS": str(threads)})
    return json.loads(done.stdout)


def train_seconds(run_dirs) -> float:
    """The wall seconds the runs' own training took (their summaries' `wall_s`, every session of each):
    unlike an invocation's wall time, a later invocation that only re-reads finished runs leaves it as it was."""
    return round(sum(json.loads((Path(d) / "summary.json").read_text()).get("wall_s") or 0.0 for d in run_dirs), 1)


def val_curve(run_dir: Path) -> list[tuple[int, int, float]]:
    """(step, tokens, val_loss) of every validation evaluation (loop evals and episode-end evals)."""
    points = {}
    for r in read_metrics(Path(run_dir) / "metrics.jsonl"):
        if "val_loss" in r:
            points[r["step"]] = (r["step"], r["tokens"], float(r["val_loss"]))
    return sorted(points.values())


def mean_std(values: list[float]) -> dict:
    values = [v for v in values if v is not None]
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            "n": len(values), "values": values}


def wikipedia_store(out: Path) -> Path:
    """`out/store`: the 16k Wikipedia sentences of ../shared/data as a bert-base-uncased store, one per line
    (prepared once; the tiny-encoder experiments pretrain on it)."""
    from tinylm.data import prepare_store

    store = out / "store"
    if not (store / "meta.json").exists():
        text = out / "wikipedia.txt"
        text.parent.mkdir(parents=True, exist_ok=True)
        csv = SHARED_DATA / "corpora" / "wikipedia-sentences" / "wikipedia.csv"
        lines = csv.read_text(encoding="utf-8").splitlines()[1:]
        text.write_text("\n".join(line.strip().strip('"') for line in lines) + "\n", encoding="utf-8")
        prepare_store([str(text)], "bert-base-uncased", store, val_fraction=0.05, seed=0, docs="line")
    return store
