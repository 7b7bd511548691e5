"""Execute a recipe into a run directory: build (or resume), train, write `summary.json`.

Ctrl-C, SIGTERM (a scheduler preempting the job) or SIGUSR1 (SLURM's warning before the time limit)
asks the loop to stop after the current step and write a checkpoint, so `tinylm train ... --resume auto`
continues exactly; a second Ctrl-C aborts at once. A second SIGTERM or SIGUSR1 does not: a scheduler
may send both, one after the other, and the checkpoint being written is the point of stopping.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shlex
import signal
import time
from pathlib import Path

import torch

from tinylm.disk_space import disk_space
from tinylm.errors import TrainingDiverged
from tinylm.output_location import check_output_dir, writer_lock
from tinylm.rundir.metrics import best_val_loss
from tinylm.rundir.serialize import write_json
from tinylm.runs.closing_sample import closing_sample
from tinylm.tracking import require_sinks
from tinylm.train.build import build_run, foreign_run_dir
from tinylm.train.fsdp import gathered
from tinylm.train.loop import train
from tinylm.train.recipe import Recipe

log = logging.getLogger(__name__)


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1)


@contextlib.contextmanager
def stop_on_interrupt(run):
    """Ctrl-C (SIGINT), a scheduler's SIGTERM or SLURM's SIGUSR1 warning: finish the step, checkpoint,
    exit resumable."""
    def handler(signum, frame):
        if run.stop_requested:
            if signum == signal.SIGINT:
                raise KeyboardInterrupt
            return
        run.stop_requested = True
        log.warning("%s: stopping after this step and writing a checkpoint%s", signal.Signals(signum).name,
                    " (Ctrl-C again to abort)" if signum == signal.SIGINT else "")
    previous = {}
    try:
        for sig in STOP_SIGNALS:
            previous[sig] = signal.signal(sig, handler)
    except ValueError:  # not the main thread: no signal handling
        pass
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def execute(recipe: Recipe, out_dir: Path, resume: bool = False, force: bool = False, on_start=None,
            on_step=None, on_eval=None, on_event=None) -> dict:
    """Train `recipe` into `out_dir`; returns the summary (also written to summary.json).

    `on_start(run)` (once the methods have started; not for a run already complete), `on_step(run,
    record)` and `on_eval(run, metrics)` let a caller watch (progress bars) or steer (a sweep's
    pruner ends a poor trial with `run.finish`) without a recipe method. `on_event(run, record)` gets
    each event record (a sleep, a rollback, a reset: a `metrics.jsonl` line with an "event" key) as it
    is logged, from the methods' start on, so a console can say what the curriculum did.

    Times: `wall_s` is the run's whole wall time, all its sessions together (carried in the
    checkpoints), `session_wall_s` the last session that trained. A run already complete trains
    nothing and keeps the times its summary has. torch's thread count (`train.threads`) is put back
    as it was, so the next recipe of a sweep or seed study in this process starts from the same.

    One writer at a time: the run directory holds `tinylm.lock` (pid, host) while this runs, and a second
    `execute` into it (another `tinylm train`, a `--resume` beside a live run) is refused in one line.
    """
    check_output_dir(out_dir, accept=foreign_run_dir)  # before the lock creates it
    require_sinks(recipe.log)  # a tracker's missing package: one line, before the lock creates the directory
    main = int(os.environ.get("RANK", "0")) == 0  # under torchrun the first process holds it for all
    resume_line = f"`tinylm train --out {shlex.quote(str(out_dir))} --resume` continues from the last checkpoint"
    with writer_lock(out_dir) if main else contextlib.nullcontext(), disk_space(out_dir, fix=resume_line):
        return _execute(recipe, Path(out_dir), resume, force, on_start, on_step, on_eval, on_event)


def _execute(recipe, out_dir, resume, force, on_start, on_step, on_eval, on_event) -> dict:
    started = time.time()
    before = _finished(out_dir) if resume else {}  # a torn summary.json is refused before anything is touched
    run = build_run(recipe, out_dir, resume=resume, force=force)
    if on_event is not None:
        _hand_over_events(run, on_event)
    run.session_start = started  # building (opening the store, loading the checkpoint) is part of the session
    trains = run.step < run.total_steps or not run.ended  # killed before its end: the end is still to do
    if not trains and not before:  # ended, killed before summary.json was written: its metrics hold the end
        before = _ended_from_metrics(out_dir, run)
    status = "failed"
    try:
        with stop_on_interrupt(run):
            last = train(run, on_step=on_step, on_eval=on_eval, on_start=on_start) if trains else before
        status = "finished" if run.ended else "interrupted"
    except KeyboardInterrupt:  # a second Ctrl-C: resumable from the last checkpoint
        status = "interrupted"
        raise
    except TrainingDiverged as e:  # the run's last record says why it ended (`tinylm runs`: failed); a resume drops it
        run.log_event("diverged", reason=str(e))
        raise
    finally:
        torch.set_num_threads(run.threads_before)
        if run.metrics.trackers is not None:  # flushed and marked, whatever ended the session
            run.metrics.trackers.close(status)
            run.metrics.trackers = None
    summary = {
        "name": recipe.name, "out_dir": str(out_dir), "complete": run.ended,
        "steps": run.step, "total_steps": run.total_steps, "tokens": run.tokens, **run.words_field, "flops": run.flops,
        "parameters": sum(p.numel() for p in run.model.parameters()),
        "val_loss": last.get("val_loss"), "val_ppl": last.get("val_ppl"), "loss": last.get("loss"),
        "best_val_loss": best_val_loss(out_dir)[0],  # the lowest eval of the whole log, so no reader rescans it
        "device": str(run.device), **run.precision_choice.to_dict(),  # precision (resolved), precision_requested, why
        "processes": run.world.size, "wall_s": round(run.wall_s, 2),
        "session_wall_s": round(time.time() - started, 2),
    }
    if not trains:  # nothing trained now: the times stay those of the sessions that did
        summary["wall_s"] = last.get("wall_s", round(run.wall_before, 2))
        summary["session_wall_s"] = last.get("session_wall_s")
    # drawn when the model it describes is final: after training, or on a resume of a run killed before its summary
    fresh = run.ended and (trains or "sample" not in before)
    # a sharded model is gathered whole on every rank (a collective), and rank 0 samples from it alone
    whole = gathered(run.model).to(run.device) if fresh and run.sharded else run.model
    sample = closing_sample(run, out_dir, whole) if fresh and run.world.is_main else before.get("sample")
    if sample is not None:  # a few words the model writes (decoders): runs/closing_sample.py
        summary["sample"] = sample
    if run.world.is_main:
        write_json(Path(out_dir) / "summary.json", summary)
    run.metrics.close()
    return summary


def _hand_over_events(run, on_event) -> None:
    """Call `on_event(run, record)` after each event record this run's metrics log writes (the log has no
    listeners of its own, so its `write` is wrapped, on this run alone)."""
    write = run.metrics.write

    def write_and_hand_over(record: dict) -> None:
        write(record)
        if "event" in record:
            on_event(run, record)

    run.metrics.write = write_and_hand_over


SUMMARY_FIX = "delete it; `tinylm train --out {run} --resume` writes it again"


def _ended_from_metrics(out_dir: Path, run) -> dict:
    """The final metrics of an ended run as its log has them (the last log line, the `end` event)."""
    from tinylm.rundir.metrics import read_metrics

    path = Path(out_dir) / "metrics.jsonl"
    end = next((r for r in reversed(read_metrics(path)) if r.get("event") == "end"), {}) if path.exists() else {}
    return {**run.metrics.last_log, "val_loss": end.get("val_loss"), "val_ppl": end.get("val_ppl")}


def _finished(out_dir: Path) -> dict:
    from tinylm.rundir.files import read_json

    path = Path(out_dir) / "summary.json"
    return read_json(path, SUMMARY_FIX.format(run=out_dir)) if path.exists() else {}
