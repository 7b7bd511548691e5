"""Trackers: `metrics.jsonl`'s lines mirrored to TensorBoard, Weights & Biases and MLflow as they are written.

A recipe's `log: [tensorboard, wandb, mlflow]` (or `tinylm train --log ...`) names the sinks. Every line
`MetricsLog.write` writes (log steps, evaluations, every event a method or primitive logs) goes to each
of them right after it reaches `metrics.jsonl`, which stays the record of truth: a sink sees nothing the
file does not hold. The files go inside the run directory unless the user says otherwise (RUN/tensorboard,
RUN/wandb, RUN/mlruns; `MLFLOW_TRACKING_URI` and W&B's own variables, e.g. `WANDB_MODE=offline`, rule).

Errors: a sink that cannot start is the user's to fix before any step is trained (a `UserError`: nothing is
lost by stopping there). A sink that fails mid-run is warned about once and dropped for the rest of the
session; training goes on, because every value it would have shown is in `metrics.jsonl` already, and
stopping a run for its dashboard would throw away the compute the dashboard was meant to watch.

This package imports nothing of training (train imports it) and no tracker library until a sink is
opened: a run without `log:` never pays for importing wandb or mlflow.
"""

from __future__ import annotations

from tinylm.errors import UserError

# Sink name -> (the module of this package that writes it, the optional package it needs).
SINKS = {
    "tensorboard": ("tinylm.tracking.tensorboard_sink", "tensorboard"),
    "wandb": ("tinylm.tracking.wandb_sink", "wandb"),
    "mlflow": ("tinylm.tracking.mlflow_sink", "mlflow"),
}


def check_sink_names(names, where: str = "recipe key `log`") -> list[str]:
    """`names` (a list, or one name) as a list of known sinks without repeats; anything else is a UserError."""
    if names is None:
        return []
    if isinstance(names, str):
        names = [names]
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise UserError(f"{where} is {names!r}: give a list of trackers, e.g. `log: [tensorboard]` "
                        f"(known: {', '.join(SINKS)})")
    unknown = [n for n in names if n not in SINKS]
    if unknown:
        raise UserError(f"{where}: unknown tracker {unknown[0]!r}: choose from {', '.join(SINKS)}")
    return list(dict.fromkeys(names))


def parse_sink_list(text: str, option: str = "--log") -> list[str]:
    """`tensorboard,wandb` -> the names; `none` -> []."""
    names = [p.strip() for p in str(text).split(",") if p.strip()]
    if names == ["none"]:
        return []
    return check_sink_names(names, f"{option} {text}")


def require_sinks(names) -> None:
    """Each sink's package importable, or one line naming the extra that installs it (before any file is written)."""
    from tinylm.optional import require

    for name in names:
        require(SINKS[name][1], f"log: [{name}]")


def open_trackers(names, run_dir, run_name: str, hparams: dict, resume_step: int | None):
    """The sinks `names` opened for the run in `run_dir` (`resume_step`: the step a resumed run continues
    from; None for a fresh one), as one `Trackers` fan-out; None when there are none."""
    import importlib

    from tinylm.tracking.fanout import Trackers

    if not names:
        return None
    require_sinks(names)
    sinks = []
    try:
        for name in names:
            module = importlib.import_module(SINKS[name][0])
            try:
                sinks.append(module.open_sink(run_dir, run_name, hparams, resume_step))
            except UserError:
                raise
            except Exception as e:  # the library's own error (a login W&B wants, a store it cannot open)
                reason = str(e).strip().splitlines()[0][:300] if str(e).strip() else type(e).__name__
                raise UserError(f"log: [{name}] could not start ({reason}): fix that, or leave {name} out of "
                                "`log:` (metrics.jsonl has every value)") from e
    except BaseException:
        for sink in sinks:
            sink.close("failed")
        raise
    return Trackers(sinks)
