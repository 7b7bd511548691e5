"""FORGETTER's figure 1 for a finished (or partial) structure sweep, and figure 2 beside it.

Left: for each layer count, the best trial's query heads per layer, over every trial tried (grey)
and the curve target/L with its band, so "about 120 heads in total" reads as points on the curve.
Right: the best validation loss per layer count (the paper's figure 2 for one training method).
"""

from __future__ import annotations

import os
from pathlib import Path

# A bare Figure renders with the Agg canvas and touches no pyplot state: no display needed, and
# the backend of a notebook that imported us is left alone.
from tinylm.optional import require
from tinylm.sweep.structures import StructureSpace

Figure = require("matplotlib.figure", "the structure sweep's heads-vs-layers plot").Figure
MaxNLocator = require("matplotlib.ticker", "the structure sweep's heads-vs-layers plot").MaxNLocator


def best_per_depth(rows: list[dict]) -> dict[int, dict]:
    """Layer count -> the ranking row with the lowest validation loss at that depth."""
    best: dict[int, dict] = {}
    for row in rows:
        depth = row.get("layers")
        if depth is not None and row.get("val_loss") is not None:
            if depth not in best or row["val_loss"] < best[depth]["val_loss"]:
                best[depth] = row
    return dict(sorted(best.items()))


def plot_heads_vs_layers(rows: list[dict], space: StructureSpace, path: Path) -> Path:
    best = best_per_depth(rows)
    fig = Figure(figsize=(11, 4.2))
    left, right = fig.subplots(1, 2)
    tried = [(r["layers"], r["heads"]) for r in rows if "layers" in r]
    if tried:
        left.scatter(*zip(*tried), s=12, color="0.75", label="tried", zorder=1)
    lo_l, hi_l = min(space.layers), max(space.layers)
    xs = [lo_l + (hi_l - lo_l) * i / 200 for i in range(201)]
    lo_h, hi_h = space.head_band
    left.fill_between(xs, [lo_h / x for x in xs], [hi_h / x for x in xs], color="tab:blue", alpha=0.12,
                      label=f"{lo_h}-{hi_h} heads in total")
    left.plot(xs, [space.target_heads / x for x in xs], color="tab:blue", lw=1,
              label=f"{space.target_heads} / layers")
    if best:
        depths = list(best)
        left.plot(depths, [best[d]["heads"] for d in depths], "o", color="tab:red", zorder=3,
                  label="best at each depth")
        for d in depths:
            left.annotate(str(best[d]["heads"] * d), (d, best[d]["heads"]), textcoords="offset points",
                          xytext=(0, 6), ha="center", fontsize=7, color="tab:red")
        right.plot(depths, [best[d]["val_loss"] for d in depths], "o-", color="tab:red")
    left.set(xlabel="layers", ylabel="query heads per layer", title="Best heads per layer (total annotated)")
    left.legend(fontsize=8)
    right.set(xlabel="layers", ylabel="validation loss", title="Best validation loss per depth")
    for ax in (left, right):
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.png")  # workers sharing the sweep directory
    fig.savefig(tmp, dpi=120)
    tmp.replace(path)
    return path
