"""Which `metrics.jsonl` events a report marks on the loss curve, and how each kind looks.

The methods log every primitive they call (tinylm/train/run.py `log_event`, the methods' own events),
but several are the mechanics of one decision: a light sleep is `episode_end` + `reset_optimizer` +
`restart_schedule`, a deep sleep adds `rebuild_model`, a grow stage is `grow` + `set_trainable` +
`grow_phase`. The curve marks the decision (what a reader of the paper would call the event) once,
with a marker and colour of its own; the mechanics stay in the events table. An event kind this file
does not know is still marked, as "other", so a new method's events show up without a change here.

Distillation logs no event (its teachers act on every step), so a distilled run gets one mark at step
0, naming its teachers: that the curve is a student's is part of its story.
"""

from __future__ import annotations

from dataclasses import dataclass

# Mechanics of a decision marked by another event (or bookkeeping): listed in the table, not marked.
MECHANICS = {"reset_optimizer", "restart_schedule", "rebuild_model", "snapshot", "set_trainable", "set_lr_scale",
             "grow", "end"}


@dataclass(frozen=True)
class Style:
    label: str    # the legend's words
    marker: str   # matplotlib marker
    color: str


STYLES = {
    "light_sleep": Style("light sleep (optimizer reset)", "v", "#1f77b4"),
    "deep_sleep": Style("deep sleep (model rebuilt)", "v", "#6a3d9a"),
    "sleep_stop": Style("sleep policy stops the run", "X", "#000000"),
    "episode_end": Style("episode ends with the run", "H", "#7f7f7f"),
    "rollback": Style("rollback to the best snapshot", "<", "#d62728"),
    "nan_rollback": Style("non-finite loss: rolled back", "x", "#e377c2"),
    "diverged": Style("non-finite loss: the run stopped", "X", "#d62728"),  # logged by runs/execute.py
    "reinit": Style("forget: weights re-drawn", "*", "#ff7f0e"),
    "grow_stage": Style("grow: new stage (older layers frozen)", "^", "#2ca02c"),
    "grow_phase2": Style("grow: all layers train", "^", "#98df8a"),
    "grow_continual": Style("grow: continual phase", "D", "#17becf"),
    "truncate": Style("truncated to the first stage", "d", "#8c564b"),
    "set_hyperparameters": Style("new learning rate / weight decay", "P", "#bcbd22"),
    "schedule_length": Style("schedule re-laid (new duration)", "1", "#8c564b"),
    "finish": Style("run ended early", "s", "#555555"),
    "distill": Style("distillation from the teachers begins", "o", "#008080"),
    "other": Style("other event", ".", "#aaaaaa"),
}


def kind_of(record: dict, total_steps: int | None = None) -> str | None:
    """The marked kind of one event record, or None for mechanics."""
    event = record.get("event")
    if event in MECHANICS:
        return None
    if event == "episode_end":
        sleep = record.get("sleep")
        if sleep == "stop":
            return "sleep_stop"
        if total_steps is not None and record.get("step", 0) >= total_steps:
            return "episode_end"  # the run's last episode: no sleep follows it
        return {"light": "light_sleep", "deep": "deep_sleep"}.get(sleep, "episode_end")
    if event == "grow_phase":
        return {"phase1": "grow_stage", "phase2": "grow_phase2", "continual": "grow_continual"}.get(
            record.get("phase"), "grow_stage")
    return event if event in STYLES else "other"


def distill_teachers(config: dict) -> list[str]:
    """The teachers a run's resolved recipe distils from ([] when it does not distil)."""
    for method in config.get("methods") or []:
        if isinstance(method, dict) and isinstance(method.get("distill"), dict):
            return [str(t) for t in method["distill"].get("teachers") or []]
    return []


def marks(events: list[dict], config: dict, total_steps: int | None) -> list[dict]:
    """The run's marked events as {kind, step, tokens, words, flops, record}, in order (words None where
    the run does not count them)."""
    out = []
    teachers = distill_teachers(config)
    if teachers:
        out.append({"kind": "distill", "record": {"event": "distill", "teachers": teachers}, "step": 0, "tokens": 0,
                    "words": 0, "flops": 0.0})
    for record in events:
        kind = kind_of(record, total_steps)
        if kind is not None:
            out.append({"kind": kind, "record": record, **_where(record)})
    return out


def _where(record: dict) -> dict:
    return {x: record.get(x) for x in ("step", "tokens", "words", "flops")}


def describe(record: dict) -> str:
    """An event's own fields, for the table: `episode 2, val_loss 3.412, sleep deep`."""
    fields = {k: v for k, v in record.items() if k not in ("event", "step", "tokens", "words", "flops")}
    parts = []
    for key, value in fields.items():
        if isinstance(value, float):
            value = f"{value:.4g}"
        elif isinstance(value, list) and len(value) > 4:
            value = ", ".join(map(str, value[:3])) + f" and {len(value) - 3} more"
        elif isinstance(value, list):
            value = ", ".join(map(str, value))
        parts.append(f"{key} {value}")
    return "; ".join(parts)
