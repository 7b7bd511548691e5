"""The spread of a metric over seeds, one violin per model type (BabyLlama-2's figure 1).

A difference between two recipes means something only next to how far each moves with the seed;
BabyLlama-2 draws every model type as a violin with ticks at the mean and ± 1 std. Each seed is
also drawn as a point, because with three to five seeds the points say more than the violin's shape.
"""

from __future__ import annotations

import random
from pathlib import Path

# A bare Figure renders with the Agg canvas and leaves pyplot (a notebook's backend) alone.
from tinylm.optional import require

Figure = require("matplotlib.figure", "tinylm seeds --plot").Figure


def plot_spread(groups: list[tuple[str, list[float]]], metric: str, path: Path, title: str | None = None) -> Path:
    """One violin (two values or more), the seeds as points and mean ± sample std ticks per group."""
    from tinylm.runs.stats import describe

    fig = Figure(figsize=(max(4.0, 1.6 * len(groups) + 1.5), 4.2))
    ax = fig.subplots()
    positions = list(range(1, len(groups) + 1))
    shaped = [(x, v) for x, (_, v) in zip(positions, groups) if len(v) >= 2]
    if shaped:
        parts = ax.violinplot([v for _, v in shaped], positions=[x for x, _ in shaped], showextrema=False,
                              widths=0.7)
        for body in parts["bodies"]:
            body.set_alpha(0.25)
    jitter = random.Random(0)  # the same picture every time
    for x, (_, values) in zip(positions, groups):
        ax.scatter([x + jitter.uniform(-0.08, 0.08) for _ in values], values, s=14, color="0.2", zorder=3)
        d = describe(values)
        if d["n"]:
            ax.hlines(d["mean"], x - 0.22, x + 0.22, color="tab:red", lw=2, zorder=4)
            if d["std"] is not None:
                for y in (d["mean"] - d["std"], d["mean"] + d["std"]):
                    ax.hlines(y, x - 0.12, x + 0.12, color="tab:red", lw=1, zorder=4)
    ax.set_xticks(positions, [f"{label}\n(n={len(v)})" for label, v in groups], fontsize=8)
    ax.set_ylabel(metric)
    ax.set_title(title or f"{metric} over seeds\n(mean, ± 1 sample std)", fontsize=10)  # two lines: one violin is narrow
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".tmp" + (path.suffix or ".png"))
    fig.savefig(tmp, dpi=120)
    tmp.replace(path)
    return path
