"""The report's pictures, as PNG bytes to embed in the page (nothing is written beside it).

The loss curve is drawn three times, against optimizer steps, tokens and cumulative FLOPs: a sleep or
a grow stage changes what a step costs, so only the FLOPs axis compares curricula fairly, while steps
is where the recipe's numbers (episode lengths, stage ends) can be read off. Where every run logs
`words` (tinylm/data/words_seen.py) a fourth is drawn against words seen, the BabyLM challenge's budget. Every marked event
(`report/events.py`) sits on the run's training-loss curve at the step it happened, with one marker and
colour per kind and a legend of the kinds present. The seed spread and the equal-compute figure are
the ones `tinylm seeds --plot` and `tinylm compare --x flops` draw, so the report and those commands
always agree.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from tinylm.optional import require
from tinylm.report.events import STYLES, marks
from tinylm.report.facts import RunFacts
from tinylm.rundir.curves import value_at

AXES = {"step": "optimizer step", "tokens": "tokens", "flops": "cumulative training FLOPs",
        "words": "words of training data seen (BabyLM's count)"}
DPI = 100


def _figure(width: float = 7.0, height: float = 4.3):
    # A bare Figure renders with the Agg canvas and leaves pyplot (a notebook's backend) alone.
    return require("matplotlib.figure", "tinylm report").Figure(figsize=(width, height))


def _png(fig) -> bytes:
    import io

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight")
    return buffer.getvalue()


def _height_at(points: list[tuple[float, float]], x) -> float | None:
    """The curve's value at x; before its first point (a step-0 event) its first value, after it its last."""
    if not points or x is None:
        return None
    value = value_at(points, float(x))
    if value is not None:
        return value
    return points[0][1] if float(x) < points[0][0] else points[-1][1]


def total_steps(run: RunFacts) -> int | None:
    steps = run.summary.get("total_steps")
    return steps if isinstance(steps, int) else None


def run_marks(run: RunFacts) -> list[dict]:
    return marks(run.events, run.config, total_steps(run))


def loss_figure(runs: list[RunFacts], x: str) -> bytes:
    """Training loss (lines) and validation loss (circles) against `x`, one colour per run, events marked."""
    fig = _figure()
    ax = fig.subplots()
    seen: dict[str, object] = {}
    many = len(runs) > 1
    for i, run in enumerate(runs):
        color = f"C{i % 10}"
        train, val = run.series("loss", x), run.series("val_loss", x)
        if train:
            ax.plot(*zip(*train), color=color, lw=1.2, label=f"{run.label}: training" if many else "training loss")
        if val:
            ax.plot(*zip(*val), color=color, ls="--", marker="o", ms=4, lw=0.9,
                    label=f"{run.label}: validation" if many else "validation loss")
        curve = train or val
        for mark in run_marks(run):
            y = _height_at(curve, mark[x])
            if y is None:
                continue
            style = STYLES[mark["kind"]]
            handle = ax.scatter([mark[x]], [y], marker=style.marker, s=90, color=style.color, zorder=5,
                                edgecolors="white" if style.marker not in "x1" else None, linewidths=0.6)
            seen.setdefault(mark["kind"], handle)
    ax.set_xlabel(AXES[x])
    ax.set_ylabel("cross-entropy (nats per token)")
    ax.grid(alpha=0.3)
    # both legends beside the axes, never over the curves: the runs' lines above, the event kinds below
    first = ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    if seen:
        ax.add_artist(first)
        ax.legend(list(seen.values()), [STYLES[k].label for k in seen], loc="lower left", bbox_to_anchor=(1.01, 0.0),
                  fontsize=8, title="events", title_fontsize=8)
    return _png(fig)


def spread_figure(groups: list[tuple[str, list[float]]], metric: str) -> bytes:
    """`tinylm seeds`' violin per study: every seed a point, mean ± 1 sample std."""
    from tinylm.runs.spread import plot_spread

    with tempfile.TemporaryDirectory(prefix="tinylm-report-") as tmp:
        return plot_spread(groups, metric, Path(tmp) / "spread.png").read_bytes()


def equal_compute(runs: list[RunFacts]) -> tuple[dict, bytes] | None:
    """`tinylm compare --x flops` over the runs (the first is the reference): its numbers and its figure;
    None when a run logged no FLOPs to match."""
    from tinylm.eval.compare import compute_curves, plot_curves

    try:
        data = compute_curves([r.path for r in runs], "flops")
    except ValueError:  # the reference logged no FLOPs (a run stopped before its first log line)
        return None
    with tempfile.TemporaryDirectory(prefix="tinylm-report-") as tmp:
        return data, plot_curves(data, Path(tmp) / "equal.png").read_bytes()
