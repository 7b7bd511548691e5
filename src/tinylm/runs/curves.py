"""Reading a run's learning curve: how fast did it get where (GAFF's adaptation measures)."""

from __future__ import annotations

from pathlib import Path

from tinylm.train.metrics import read_metrics


def curve(run_dir: Path, key: str = "loss") -> list[tuple[int, float]]:
    """(step, value) pairs of one metric from `metrics.jsonl`, in step order."""
    points = {r["step"]: float(r[key]) for r in read_metrics(Path(run_dir) / "metrics.jsonl")
              if key in r and "event" not in r}
    return sorted(points.items())


def steps_to_reach(points: list[tuple[int, float]], target: float) -> int | None:
    """First logged step at which the value is at or below `target` (None: never reached)."""
    return next((step for step, value in points if value <= target), None)


def area_under_curve(points: list[tuple[int, float]]) -> float:
    """Trapezoidal area under the curve divided by its span: the curve's mean height (lower is faster)."""
    if len(points) < 2:
        return points[0][1] if points else float("nan")
    area = sum((s1 - s0) * (v0 + v1) / 2 for (s0, v0), (s1, v1) in zip(points, points[1:]))
    return area / (points[-1][0] - points[0][0])
