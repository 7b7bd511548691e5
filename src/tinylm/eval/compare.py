"""Correlate two metrics over many runs: does validation loss predict BLiMP?

BabyLlama-2 (fig. 2) plots BLiMP against validation loss across runs; FORGETTER claims the two
correspond one to one. ``correlate`` gives Pearson's r, R² = r² and n over the runs that have
both numbers, and lists the runs left out and why.
"""

from __future__ import annotations

import math
from pathlib import Path

from tinylm.errors import UserError
from tinylm.optional import require
from tinylm.rundir.run_selection import select_runs

# Short names for the headline keys that `tinylm eval` writes.
ALIASES = {"blimp": "blimp_mean", "blimp_filtered": "blimp_filtered_mean", "hellaswag": "hellaswag_acc"}


def find_runs(paths, skipped: list | None = None) -> list[Path]:
    """Run directories (with summary.json) among ``paths``; a directory of runs expands to them.

    Among several paths, one that is neither is left out with a note appended to ``skipped`` when it is
    a list (tinylm.rundir.run_selection: a glob such as ``runs/*`` also matches an ensemble's eval
    output beside the runs, as the README's own tour writes).
    """
    def expand(path: Path) -> list[Path]:
        if (path / "summary.json").is_file():
            return [path]
        return sorted(p.parent for p in path.glob("*/summary.json")) if path.is_dir() else []

    return select_runs(paths, expand, what="a run (no summary.json) or a directory of runs",
                       give="give run directories written by `tinylm train`",
                       usage="tinylm compare RUN_DIR [RUN_DIR ...]", skipped=skipped)


def read_summary(run: Path) -> dict:
    from tinylm.rundir.files import read_json

    return read_json(run / "summary.json", f"delete it; `tinylm train --out {run} --resume` writes it again")


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


# -- curves against compute (the incremental-training paper's figures 1 and 2) ------------------------
X_AXES = ("flops", "steps", "tokens")


def _labels(runs: list[Path]) -> list[str]:
    names = [run.name for run in runs]
    return [f"{run.parent.name}/{run.name}" if names.count(run.name) > 1 else run.name for run in runs]


def compute_curves(runs: list[Path], x: str = "flops", reference: Path | None = None,
                   at_step: float | None = None) -> dict:
    """Validation loss (and HellaSwag accuracy where evaluated) of each run against `x`, and each run's
    equal-compute point: the step at which its cumulative FLOPs equal the reference's at `at_step`
    (default: the reference's last step), with its metrics there."""
    from tinylm.compute import equal_compute_points, flops_at_step
    from tinylm.rundir.curves import curve, eval_report_curve, flops_curve, value_at

    if x not in X_AXES:
        raise UserError(f"--x {x!r}: choose one of {', '.join(X_AXES)}")
    runs = list(runs)
    reference = Path(reference) if reference is not None else runs[0]
    resolved = [run.resolve() for run in runs]
    if reference.resolve() in resolved:
        reference = runs[resolved.index(reference.resolve())]
    else:
        runs.insert(0, reference)
    for run in runs:
        if not (run / "metrics.jsonl").is_file():
            raise UserError(f"{run} has no metrics.jsonl: give run directories written by `tinylm train`")
    flops = {run: flops_curve(run) for run in runs}
    tokens = {run: [(0, 0.0)] + [(s, float(v)) for s, v in curve(run, "tokens")] for run in runs}
    if at_step is not None and at_step > flops[reference][-1][0]:
        raise UserError(f"--at {at_step:g}: the reference run {reference} only reached step {flops[reference][-1][0]}")
    equal = equal_compute_points(flops[reference], {run: flops[run] for run in runs}, at_step)

    def to_x(run, step):
        if x == "steps" or step is None:
            return step
        return flops_at_step(flops[run] if x == "flops" else tokens[run], step)

    out = []
    for run, label in zip(runs, _labels(runs)):
        series = {"val_loss": curve(run, "val_loss"), "hellaswag_acc": eval_report_curve(run, "hellaswag", "acc")}
        step = equal["points"][run]["step"]
        row = {"run": str(run), "label": label, "steps": flops[run][-1][0], "flops": flops[run][-1][1],
               "mfu": _median([v for _, v in curve(run, "mfu")]),
               "equal_compute": {"step": step, "x": to_x(run, step),
                                 **{k: (value_at(v, step) if step is not None else None) for k, v in series.items()}}}
        for key, points in series.items():
            row[key] = [(to_x(run, s), v) for s, v in points]
        out.append(row)
    return {"x": x, "reference": str(reference), "reference_step": equal["reference_step"],
            "reference_flops": equal["flops"], "runs": out}


def _median(values: list[float]) -> float | None:
    import statistics
    return statistics.median(values) if values else None


def plot_curves(data: dict, path: Path) -> Path:
    """Validation loss (and HellaSwag accuracy, if any run has it) against data["x"], one line per run,
    a large dot at each run's equal-compute point (as the paper's figures)."""
    require("matplotlib", "tinylm compare --x").use("Agg")
    plt = require("matplotlib.pyplot", "tinylm compare --x")

    panels = ["val_loss"] + (["hellaswag_acc"] if any(r["hellaswag_acc"] for r in data["runs"]) else [])
    fig, axes = plt.subplots(1, len(panels), figsize=(6.5 * len(panels), 4.5), squeeze=False)
    for ax, key in zip(axes[0], panels):
        for i, r in enumerate(data["runs"]):
            color = f"C{i % 10}"
            if r[key]:
                ax.plot([p[0] for p in r[key]], [p[1] for p in r[key]], color=color, label=r["label"], marker=".")
            point = r["equal_compute"]
            if point["x"] is not None and point.get(key) is not None:
                ax.plot([point["x"]], [point[key]], "o", color=color, markersize=11)
        if data["x"] == "flops":
            ax.axvline(data["reference_flops"], color="k", ls=":", lw=1)
        ax.set_xlabel({"flops": "cumulative training FLOPs", "steps": "optimizer step", "tokens": "tokens"}[data["x"]])
        ax.set_ylabel({"val_loss": "validation loss", "hellaswag_acc": "HellaSwag acc"}[key])
        ax.legend(fontsize=8)
    label = next(r["label"] for r in data["runs"] if r["run"] == data["reference"])
    fig.suptitle(f"dots: equal compute with {label} at step {data['reference_step']:g}", fontsize=10)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
