"""Progress for a terminal (a tqdm bar with loss, tokens/s and ETA) or plain log lines otherwise, and
one line per method event (a sleep, a rollback, a forget reset, a grow stage) above the bar.

Without the event lines, what a curriculum did was visible only in metrics.jsonl. The lines are
progress: `--quiet` silences them with the bar (metrics.jsonl keeps every event). A primitive that
is one part of an event already told (the optimizer reset of a light sleep, the schedule restart of
a grow stage, a snapshot) prints nothing; an event kind not known here prints its fields.
"""

from __future__ import annotations

import sys

# Primitives that only carry out an event that has its own line (see EventLines), or the run's end,
# which the command's summary reports.
SILENT = {"reset_optimizer", "restart_schedule", "rebuild_model", "snapshot", "set_trainable", "set_lr_scale",
          "grow", "truncate", "end",
          "diverged"}  # the one-line error that follows says it (runs/execute.py logs it for `tinylm runs`)


class TrainingProgress:
    def __init__(self, enabled: bool = True, announce: bool = False):
        self.enabled = enabled
        self.announce = announce  # `tinylm train`: first a line saying the precision and why
        self.bar = None
        self.tty = sys.stderr.isatty()
        self.events = EventLines()
        self.pending: list[str] | None = []  # event lines logged before `start` (methods starting); None after

    def start(self, run) -> None:
        """With `announce`, the first line says which precision the run computes in and why (`auto` is
        resolved on this device); a warning (bf16 emulated) is printed even when progress is off."""
        choice = run.precision_choice
        if self.announce and run.world.is_main and (self.enabled or choice.warning):
            print(choice.line(), file=sys.stderr, flush=True)
        pending, self.pending = self.pending or [], None
        if not self.enabled or not run.world.is_main:
            self.enabled = False
            return
        if self.tty:
            from tqdm import tqdm
            self.bar = tqdm(total=run.total_steps, initial=run.step, unit="step", dynamic_ncols=True, file=sys.stderr)
        for line in pending:  # the methods' own start (a grow's first stage) comes after the precision line
            self._write(line)

    def event(self, run, record: dict) -> None:
        """A method's event as one line above the bar (`execute(on_event=...)` hands each one over)."""
        if not self.enabled or not run.world.is_main:
            return
        line = self.events.line(record, run.total_steps)
        if line is None:
            return
        if self.pending is not None:
            self.pending.append(line)
        else:
            self._write(line)

    def _write(self, line: str) -> None:
        if self.bar is not None:
            from tqdm import tqdm
            tqdm.write(line, file=sys.stderr)  # clears the bar, writes the line, redraws the bar below it
        else:
            print(line, file=sys.stderr, flush=True)

    def step(self, run, record: dict) -> None:
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.update(run.step - self.bar.n)
            if record:
                self.bar.set_postfix(loss=f"{record['loss']:.3f}", tok_s=f"{record['tokens_per_s']:.0f}", refresh=False)
        elif record and record.get("step") == run.step:
            print(f"step {run.step}/{run.total_steps} loss {record['loss']:.4f} lr {record['lr']:.2e} "
                  f"{record['tokens_per_s']:.0f} tok/s", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        self.bar = None
        self.pending = []  # the next run (of a seed study or a sweep) starts its own


class EventLines:
    """`line(record)`: the console line of one `metrics.jsonl` event record, or None for a silent one.

    One formatter per event kind, written from what the event records (tinylm/train/run.py's
    primitives, the methods' own `run.log_event` calls); any other kind gets the generic line.
    """

    def __init__(self):
        self.last_val: float | None = None  # the previous episode's validation loss (sleep)

    def line(self, record: dict, total_steps: int | None = None) -> str | None:
        kind = record.get("event")
        if kind in SILENT:
            return None
        if kind == "episode_end":
            text = self._episode_end(record, total_steps)
        else:
            text = FORMATTERS.get(kind, _generic)(record)
        return f"step {record.get('step')}: {text}"

    def _episode_end(self, r: dict, total_steps: int | None) -> str:
        """sleep: an episode ended and the policy chose a light sleep, a deep sleep or to stop."""
        val, best, previous = r.get("val_loss"), r.get("best"), self.last_val
        self.last_val = val
        said = []
        if _number(val):
            said.append(f"val {previous:.4f} → {val:.4f}" if _number(previous) else f"val {val:.4f}")
            if _number(best):
                said.append("best so far" if val <= best else f"best {best:.4f}")
        why = f" ({', '.join(said)})" if said else ""
        episode = r.get("episode")
        if r.get("sleep") == "stop":
            return f"episode {episode} did not improve on the best{why}: no more sleeps"
        if total_steps is not None and r.get("step", 0) >= total_steps:
            return f"episode {episode} ends with the run{why}"
        return f"{r.get('sleep')} sleep after episode {episode}{why}"


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _rollback(r: dict) -> str:
    return f"weights rolled back to snapshot {r.get('tag')}"


def _reinit(r: dict) -> str:
    """forget (or any method that re-draws parameters): which tensors were drawn afresh."""
    names = list(r.get("params") or [])
    shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
    return f"forgot {shown}: drawn afresh with the model's init"


def _grow_phase(r: dict) -> str:
    layers, until, phase, stage = r.get("layers"), r.get("until"), r.get("phase"), r.get("stage")
    if phase == "phase2":
        return f"grow stage {stage}, phase 2: all {layers} layers train until step {until}"
    if phase == "continual":
        return f"grown: all {layers} layers train on until step {until} (continual phase)"
    first, end = (list(r.get("new") or []) + [0, 0])[:2]  # the stage's new blocks: [first, end)
    if first:
        return (f"grow stage {stage}: {layers} layers; the {end - first} new ones train, the {first} older ones "
                f"are frozen until step {until}")
    return f"grow stage {stage}: {layers} new layers train until step {until}"


def _set_hyperparameters(r: dict) -> str:
    return f"learning rate {r.get('lr')}, weight decay {r.get('weight_decay')} from here"


def _finish(r: dict) -> str:
    return f"the run ends here: {r.get('reason')}"


def _generic(r: dict) -> str:
    """A kind without its own formatter: its name and fields (a new method's events show up at once)."""
    fields = {k: v for k, v in r.items() if k not in ("event", "step", "tokens", "flops")}
    shown = ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in fields.items())
    return f"{r.get('event')}" + (f" ({shown})" if shown else "")


FORMATTERS = {"rollback": _rollback, "reinit": _reinit, "grow_phase": _grow_phase,
              "set_hyperparameters": _set_hyperparameters, "finish": _finish}
