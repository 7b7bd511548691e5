"""Correlate two metrics over many runs: does validation loss predict BLiMP?

BabyLlama-2 (fig. 2) plots BLiMP against validation loss across runs; FORGETTER claims the two
correspond one to one. ``correlate`` gives Pearson's r, R² = r² and n over the runs that have
both numbers, and lists the runs left out and why.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from tinylm.errors import UserError

# Short names for the headline keys that `tinylm eval` writes.
ALIASES = {"blimp": "blimp_mean", "blimp_filtered": "blimp_filtered_mean", "hellaswag": "hellaswag_acc"}


def find_runs(paths) -> list[Path]:
    """Run directories (with summary.json) among ``paths``; a directory of runs expands to them."""
    runs = []
    for raw in paths:
        path = Path(raw).expanduser()
        if (path / "summary.json").is_file():
            runs.append(path)
        elif path.is_dir():
            found = sorted(p.parent for p in path.glob("*/summary.json"))
            if not found:
                raise UserError(f"{path} is neither a run (no summary.json) nor a directory of runs: "
                                "give run directories written by `tinylm train`")
            runs.extend(found)
        else:
            raise UserError(f"{path} does not exist: give run directories written by `tinylm train`")
    if not runs:
        raise UserError("no runs given: tinylm compare RUN_DIR [RUN_DIR ...]")
    return runs


def read_summary(run: Path) -> dict:
    try:
        return json.loads((run / "summary.json").read_text())
    except json.JSONDecodeError as e:
        raise UserError(f"{run / 'summary.json'} is not valid JSON ({e.msg}); re-run `tinylm eval {run}`") from e


def metric(summary: dict, name: str):
    """A number from a summary by key or alias (blimp -> blimp_mean); None when absent."""
    for key in (name, ALIASES.get(name), f"{name}_mean"):
        if key and isinstance(summary.get(key), (int, float)) and not isinstance(summary.get(key), bool):
            value = float(summary[key])
            return value if math.isfinite(value) else None
    return None


def pearson(xs: list[float], ys: list[float]) -> float:
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    syy = sum((y - my) ** 2 for y in ys)
    if sxx == 0 or syy == 0:
        raise UserError("one of the metrics is the same in every run, so no correlation is defined: "
                        "compare runs that differ")
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / math.sqrt(sxx * syy)


def correlate(runs: list[Path], a: str, b: str) -> dict:
    rows, skipped = [], []
    for run in runs:
        s = read_summary(run)
        x, y = metric(s, a), metric(s, b)
        if x is None or y is None:
            missing = [m for m, v in ((a, x), (b, y)) if v is None]
            skipped.append({"run": str(run), "missing": missing})
            continue
        rows.append({"run": str(run), a: x, b: y})
    if len(rows) < 3:
        hint = "; evaluate them first: tinylm eval RUN --blimp DIR --val STORE" if skipped else ""
        raise UserError(f"{len(rows)} run(s) have both {a} and {b}; a correlation needs at least 3{hint}")
    r = pearson([row[a] for row in rows], [row[b] for row in rows])
    return {"metrics": [a, b], "n": len(rows), "pearson_r": r, "r2": r * r, "runs": rows, "skipped": skipped}


def table(runs: list[Path], metrics: list[str]) -> list[dict]:
    out = []
    for run in runs:
        s = read_summary(run)
        out.append({"run": str(run), **{m: metric(s, m) for m in metrics}})
    return out
