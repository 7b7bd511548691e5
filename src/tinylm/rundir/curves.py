"""A run's curves read from its directory (metrics.jsonl, eval reports), and how fast it got where
(GAFF's adaptation measures)."""

from __future__ import annotations

from pathlib import Path

from tinylm.rundir.files import read_json
from tinylm.rundir.metrics import read_metrics


def curve(run_dir: Path, key: str = "loss") -> list[tuple[int, float]]:
    """(step, value) pairs of one metric from `metrics.jsonl`, in step order."""
    points = {r["step"]: float(r[key]) for r in read_metrics(Path(run_dir) / "metrics.jsonl")
              if key in r and "event" not in r}
    return sorted(points.items())


def steps_to_reach(points: list[tuple[int, float]], target: float) -> int | None:
    """First logged step at which the value is at or below `target` (None: never reached)."""
    return next((step for step, value in points if value <= target), None)


def value_at(points: list[tuple[float, float]], x: float) -> float | None:
    """The curve's value at `x`, linear between its points; None outside them (no extrapolation)."""
    points = sorted(points)
    for (x0, y0), (x1, y1) in zip(points, points[1:]):
        if x0 <= x <= x1:
            return float(y0) if x1 == x0 else y0 + (y1 - y0) * (x - x0) / (x1 - x0)
    return float(points[0][1]) if len(points) == 1 and points[0][0] == x else None


def area_under_curve(points: list[tuple[int, float]]) -> float:
    """Trapezoidal area under the curve divided by its span: the curve's mean height (lower is faster)."""
    if len(points) < 2:
        return points[0][1] if points else float("nan")
    area = sum((s1 - s0) * (v0 + v1) / 2 for (s0, v0), (s1, v1) in zip(points, points[1:]))
    return area / (points[-1][0] - points[0][0])


def flops_curve(run_dir: Path) -> list[tuple[int, float]]:
    """(step, cumulative FLOPs) at every logged point — training lines, evals and primitive events, so
    the curve bends exactly where FLOPs per step changed (a grow, a freeze) — starting at (0, 0)."""
    points = {0: 0.0}
    for r in read_metrics(Path(run_dir) / "metrics.jsonl"):
        if "step" in r and isinstance(r.get("flops"), (int, float)):
            points[r["step"]] = max(points.get(r["step"], 0.0), float(r["flops"]))
    return sorted(points.items())


def eval_report_curve(run_dir: Path, task: str = "hellaswag", key: str = "acc") -> list[tuple[int, float]]:
    """(step, value) from `tinylm eval` reports: `eval/step-XXXXXXXX/<task>.json` for older checkpoints,
    `eval/<task>.json` for the run's last one; plus any `<task>_<key>` logged in metrics.jsonl."""
    fix = f"delete it and evaluate again (`tinylm eval {run_dir} ...`)"
    run_dir = Path(run_dir)
    points = dict(curve(run_dir, f"{task}_{key}")) if (run_dir / "metrics.jsonl").is_file() else {}
    for path in sorted((run_dir / "eval").glob(f"step-*/{task}.json")):
        value = read_json(path, fix).get(key)
        if isinstance(value, (int, float)):
            points[int(path.parent.name.removeprefix("step-"))] = float(value)
    latest, summary = run_dir / "eval" / f"{task}.json", run_dir / "summary.json"
    if latest.is_file() and summary.is_file():
        value = read_json(latest, fix).get(key)
        steps = read_json(summary, f"delete it; `tinylm train --out {run_dir} --resume` writes it again").get("steps")
        if isinstance(value, (int, float)) and isinstance(steps, int):
            points[steps] = float(value)
    return sorted(points.items())
