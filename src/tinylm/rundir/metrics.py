"""Reading a run's `metrics.jsonl`: one JSON record per log step and per event (`"event": "sleep"`, ...).

Training appends to it (`tinylm.train.metrics.MetricsLog`); curves, reports, seed studies and
tests read it back here. A crash mid-write can leave the last line half written: it is dropped
(`rundir.files.read_jsonl`); a damaged line before the last is refused, naming the file.
"""

from __future__ import annotations

import math
from pathlib import Path

from tinylm.rundir.files import read_jsonl

METRICS = "metrics.jsonl"
_FIX = ("a line before the last is damaged, which no crash leaves: restore the file from a copy, or delete the "
        "damaged lines")


def read_metrics(path: Path) -> list[dict]:
    """The records of a metrics.jsonl (a run directory's: `run_dir / METRICS`); a torn last line is dropped."""
    return read_jsonl(Path(path), _FIX)


def best_val_loss(run_dir: Path) -> tuple[float | None, int | None]:
    """(lowest validation loss any eval of the run reached, its step): summary.json keeps it as `best_val_loss`."""
    path = Path(run_dir) / METRICS
    best = (None, None)
    if path.exists():
        for r in read_metrics(path):
            v = r.get("val_loss")
            if isinstance(v, (int, float)) and math.isfinite(v) and (best[0] is None or v < best[0]):
                best = (float(v), r.get("step"))
    return best
