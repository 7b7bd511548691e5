"""Shared helpers for the tiny reproductions: run recipes with seeds, read curves, summarise, plot."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

from tinylm.runs.execute import execute
from tinylm.train.checkpoint import latest_checkpoint
from tinylm.train.metrics import read_metrics
from tinylm.train.recipe import recipe_from_dict


def run_recipe(data: dict, out: Path) -> dict:
    """Train (or resume, or reuse a finished) run; returns its summary."""
    out = Path(out)
    done = out / "summary.json"
    if done.exists() and json.loads(done.read_text()).get("complete"):
        return json.loads(done.read_text())
    return execute(recipe_from_dict(data), out, resume=latest_checkpoint(out) is not None, force=True)


def parallel_map(fn, items: list, jobs: int) -> list:
    """`[fn(*item) for item in items]`, in `jobs` processes of one thread each when jobs > 1.

    Tiny models leave a core mostly idle inside one process; one seed per core is faster on a
    small CPU than one run using both. Results keep the order of `items`.
    """
    if jobs <= 1:
        return [fn(*item) for item in items]
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn"),
                             initializer=_one_thread) as pool:
        return list(pool.map(fn, *zip(*items)))


def _one_thread() -> None:
    import torch
    torch.set_num_threads(1)


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
