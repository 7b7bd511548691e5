"""A run's loss curve as a PNG: training loss at every logged step, validation loss where evaluated.

It lives beside ``curves.py`` (which reads ``metrics.jsonl``) rather than in ``eval/``, so that
evaluation keeps importing nothing of runs or training for it. matplotlib is imported inside the
function, with the Agg backend, so importing this module costs nothing and needs no display.
"""

from __future__ import annotations

from pathlib import Path

from tinylm.errors import UserError
from tinylm.optional import require
from tinylm.rundir.curves import curve


def plot_loss(run_dir, path=None) -> Path:
    """Write ``path`` (default RUN/loss.png) and return it."""
    run_dir = Path(run_dir)
    if not (run_dir / "metrics.jsonl").is_file():
        raise UserError(f"{run_dir} has no metrics.jsonl: give a run directory written by `tinylm train`")
    train, val = curve(run_dir, "loss"), curve(run_dir, "val_loss")
    if not train and not val:
        raise UserError(f"{run_dir / 'metrics.jsonl'} has no loss logged yet: train the run for a few steps first")

    require("matplotlib", "the loss plot").use("Agg")
    plt = require("matplotlib.pyplot", "the loss plot")
    MaxNLocator = require("matplotlib.ticker", "the loss plot").MaxNLocator

    fig, ax = plt.subplots(figsize=(6.5, 4.0))
    # Markers as well as lines: a short run may have logged a single point of each.
    if train:
        ax.plot(*zip(*train), marker=".", color="C0", label="training loss")
    if val:
        ax.plot(*zip(*val), marker="o", color="C1", label="validation loss")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # steps, never 2.5
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("cross-entropy (nats per token)")
    ax.set_title(str(run_dir), fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path = Path(path) if path is not None else run_dir / "loss.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
