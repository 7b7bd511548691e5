"""The regime a comparison is made in, measured before comparing: ladders of training lengths.

Two kinds of ladder, one per kind of schedule:

- `flat_point`: one run at a constant learning rate read at doubling lengths N, 2N, 4N... (with a
  constant rate and no warm-up to end, the first N steps of a long run are exactly an N-step run). Its
  answer is the first rung N at which doubling the steps lowers validation loss by less than `delta`:
  where the curve has flattened. Growth's baseline and the encoders' MLM pretraining use it.
- `best_length`: runs of different lengths, each with its own decay to zero; its answer is the length
  with the lowest final validation loss, beyond which more steps overfit. FORGETTER's normal run uses it
  ("the number of steps in an epoch was optimized so that more steps caused overtraining").
"""

from __future__ import annotations

from pathlib import Path

from tinylm.rundir.curves import value_at


def doubling_rungs(points: list[tuple[int, float]], first: int) -> list[dict]:
    """(N, loss at N, loss at 2N, the drop) for N = first, 2 first, ... while 2N is on the curve."""
    rungs, n, last = [], first, max(s for s, _ in points)
    while 2 * n <= last:
        at, doubled = value_at(points, n), value_at(points, 2 * n)
        rungs.append({"n": n, "val_loss": at, "val_loss_doubled": doubled, "drop": at - doubled})
        n *= 2
    return rungs


def flat_point(points: list[tuple[int, float]], first: int, delta: float) -> dict:
    """The first rung where doubling lowers the loss by less than `delta`; the last rung (with
    `reached: False`) when the curve never flattened that much."""
    rungs = doubling_rungs(points, first)
    if not rungs:
        raise ValueError(f"the curve ends at step {max(s for s, _ in points)}: it needs at least {2 * first}")
    chosen = next((r for r in rungs if r["drop"] < delta), None)
    return {"rule": f"the first N where doubling the steps lowers validation loss by less than {delta}",
            "delta": delta, "n": (chosen or rungs[-1])["n"], "reached": chosen is not None, "rungs": rungs}


def best_length(final_loss: dict[int, float]) -> dict:
    """The length whose run ended lowest; `at_edge` when that is the ladder's shortest or longest rung
    (then the optimum may lie outside it)."""
    lengths = sorted(final_loss)
    n = min(lengths, key=lambda k: final_loss[k])
    return {"rule": "the length whose own decay-to-zero run ends at the lowest validation loss",
            "n": n, "at_edge": n in (lengths[0], lengths[-1]),
            "rungs": [{"n": k, "final_val_loss": final_loss[k]} for k in lengths]}


def plot_flat(curves: dict[str, list[tuple[int, float]]], result: dict, path: Path, title: str,
              xlabel: str = "optimizer step") -> None:
    """The ladder's curve(s) on a log-step axis, the rungs marked, the chosen N as a line."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for label, points in curves.items():
        ax.plot([s for s, _ in points if s > 0], [v for s, v in points if s > 0], marker=".", alpha=0.7, label=label)
    for r in result["rungs"]:
        ax.annotate(f"-{r['drop']:.3f}", (r["n"] * 2, r["val_loss_doubled"]), textcoords="offset points",
                    xytext=(0, 8), ha="center", fontsize=8)
    ax.axvline(result["n"], color="k", ls=":", lw=1,
               label=f"N = {result['n']}" + ("" if result["reached"] else " (not flat yet)"))
    ax.set_xscale("log", base=2)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("validation loss")
    ax.set_title(title + f"\n(drop per doubling; flat: < {result['delta']})", fontsize=10)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_lengths(curves: dict[int, list[tuple[int, float]]], result: dict, path: Path, title: str) -> None:
    """Each rung's validation curve, and the chosen length."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for n, points in sorted(curves.items()):
        axes[0].plot([s for s, _ in points], [v for _, v in points], marker=".", alpha=0.7, label=f"N = {n}")
    rungs = result["rungs"]
    axes[1].plot([r["n"] for r in rungs], [r["final_val_loss"] for r in rungs], marker="o")
    axes[1].axvline(result["n"], color="k", ls=":", lw=1, label=f"chosen N = {result['n']}")
    axes[1].set_xscale("log", base=2)
    axes[0].set_xlabel("optimizer step")
    axes[1].set_xlabel("run length N (steps, decay to zero over N)")
    for ax in axes:
        ax.set_ylabel("validation loss")
        ax.legend()
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
