"""Run an Optuna study whose trials are tinylm runs: the machinery every sweep shares.

A *space* is a callback `space(trial) -> ["key=value", ...]`: it asks the Optuna trial for values
(`trial.suggest_float("lr", 1e-4, 3e-3, log=True)`) and returns `--set`-style overrides of the base
recipe. Each trial trains `base + overrides` into `OUT/trials/<n>-<label>/` through `execute` and
minimises the final validation loss. The structure search is one space; the distillation issue's
hyperparameter search (lr, weight decay, alpha, temperature) is another.

Resumption is the point. The study lives in SQLite (`OUT/study.db`) or any SQLAlchemy URL
(PostgreSQL lets many machines share one study), opened with `load_if_exists`; `n_trials` is the
study's total, so re-running the same command only runs what is missing. A trial stopped by Ctrl-C,
by a user error, or by a dead process (a pid gone on this host, or a heartbeat silent on another)
is retried with the same parameters in the same run directory, resuming from its checkpoint.
A trial that raised a real error stays failed and counts as done, so it is not retried forever.

With a `pruner` (the hyperparameter search's Hyperband), each trial reports its validation loss at
every eval of the loop; when the pruner says so the run ends cleanly (`run.finish`: final eval,
checkpoint, summary) and the trial is marked pruned, which counts as done like a failure.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import re
import socket
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from tinylm.errors import UserError
from tinylm.optional import require
from tinylm.runs.execute import execute
from tinylm.sweep.storage import heartbeat_s, hide_password, open_storage_study
from tinylm.train.build import open_store
from tinylm.train.distributed import World
from tinylm.train.recipe import MACHINE_KEYS, Recipe, apply_overrides, diff_recipes, recipe_from_dict

optuna = require("optuna", "tinylm sweep")
TrialState = optuna.trial.TrialState

log = logging.getLogger(__name__)

Space = Callable[[optuna.Trial], list]
WORKER = f"{socket.gethostname()}:{os.getpid()}"


class TrialError(Exception):
    """A trial's own failure (diverged, crashed): recorded, the sweep goes on."""


@dataclass
class StudyResult:
    study_name: str
    ranking: list[dict]                              # complete trials, best first
    failed: list[dict] = field(default_factory=list)
    pruned: list[dict] = field(default_factory=list)  # stopped early by the pruner (value: last report)
    running: int = 0                                 # still running elsewhere (or stale, retried later)
    executed: int = 0                                # trials this call trained (resumed ones included)
    interrupted: bool = False


def shared_recipe(base: dict) -> dict:
    """`base` as every worker of one study must have it: the machine's keys and the trackers at their defaults
    (a study started before a machine key existed holds its default, and still opens)."""
    defaults = Recipe().to_dict()
    values = []
    for key in MACHINE_KEYS:
        section, name = key.split(".")
        values.append(f"{key}={defaults[section][name]}")
    return apply_overrides(base, values + ["log=[]"])


def open_study(out_dir: Path, storage: str | None, study_name: str, sampler=None,
               fingerprint: dict | None = None, pruner=None) -> optuna.Study:
    """Create or load the study; refuse to join one started with a different recipe or space."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # Optuna narrates every trial at INFO
    heartbeat_s()  # a bad value is refused before the study's directory exists
    out_dir = Path(out_dir)
    if storage is None:
        out_dir.mkdir(parents=True, exist_ok=True)
        storage = f"sqlite:///{(out_dir / 'study.db').resolve()}"
    shown = hide_password(storage)
    study = open_storage_study(storage, study_name, sampler, pruner)
    for key, value in (fingerprint or {}).items():
        saved = study.user_attrs.get(key)
        if key == "recipe" and isinstance(saved, dict):  # keys added to tinylm since, at their defaults
            with contextlib.suppress(UserError):
                saved = recipe_from_dict(saved).to_dict()
        if saved is None:
            study.set_user_attr(key, value)
        elif saved != value:
            what = (", ".join(diff_recipes(saved, value)) if isinstance(value, dict) else "") or key
            raise UserError(f"study {study_name!r} in {shown} was started with a different {key} (changed: {what}): "
                            "re-run with the same recipe and options, or start a new study with another --out/--study")
    return study


def run_study(base: dict, out_dir: Path, space: Space, n_trials: int, *, storage: str | None = None,
              study_name: str = "sweep", seed: int = 0, sampler=None, pruner=None,
              label: Callable[[list], str] | None = None, fingerprint: dict | None = None,
              on_trial_start: Callable[[int, Path], None] | None = None,
              on_trial_end: Callable[[dict], None] | None = None, on_start=None, on_step=None) -> StudyResult:
    """Run trials until the study holds `n_trials` finished (or running elsewhere); write OUT/ranking.json.

    `n_trials` is the study's total, not this call's: a repeated call runs only what is missing.
    Finished means complete, or failed for good (diverged, crashed); interrupted ones are retried.

    `base` is a recipe as a dict (`Recipe.to_dict()`); `space(trial)` returns overrides for it;
    `label(overrides)` names the trial directory; the default sampler is a seeded TPE, which suits
    continuous hyperparameters. `on_start`/`on_step` go to `execute` (progress bars). Without a
    `pruner` every trial trains to the end (the structure search: each candidate gets its budget).
    """
    out_dir = Path(out_dir)
    # A recipe mistake or a missing token store ends here, before any study or trial exists
    # (`sources:` recipes are prepared into the cache now, once, rather than by the first trial).
    open_store(recipe_from_dict(base), World())
    sampler = sampler or optuna.samplers.TPESampler(seed=seed)
    # The machine's keys (train.threads) and the trackers (`log:`) are each worker's own: workers of one study
    # may differ in them.
    same_for_all = shared_recipe(base)
    study = open_study(out_dir, storage, study_name, sampler, {"recipe": same_for_all, **(fingerprint or {})}, pruner)
    result = StudyResult(study_name, [])
    current: dict = {}  # the number of the trial this process is running

    def objective(trial: optuna.Trial) -> float:
        current["number"] = trial.number
        if _surplus(study, trial.number, n_trials):
            trial.set_user_attr("surplus", True)
            raise _Surplus
        overrides = [str(o) for o in space(trial)]
        rel = trial.user_attrs.get("run_dir")  # set on a retry: continue in the same directory
        fresh = rel is None
        if fresh:
            rel = f"trials/{trial.number:04d}" + (f"-{_safe(label(overrides))}" if label else "")
        run_dir = out_dir / rel
        if fresh and run_dir.exists():
            raise UserError(f"{run_dir} exists but study {study_name!r} has no record of it (was its storage "
                            f"replaced?): move {out_dir / 'trials'} away or choose a new --out")
        trial.set_user_attr("run_dir", rel)
        trial.set_user_attr("overrides", overrides)
        trial.set_user_attr("worker", WORKER)
        data = apply_overrides(base, overrides)
        data["name"] = f"{base.get('name', 'run')}-{run_dir.name}"
        recipe = recipe_from_dict(data)
        if on_trial_start:
            on_trial_start(trial.number, run_dir)
        result.executed += 1
        report = _Reporter(trial) if pruner is not None else None
        try:
            summary = execute(recipe, run_dir, resume=(run_dir / "config.yaml").exists(), on_start=on_start,
                              on_step=on_step, on_eval=report)
        except (UserError, KeyboardInterrupt):
            raise  # the trial stays retryable (no "error" attribute)
        except Exception as e:
            trial.set_user_attr("error", f"{type(e).__name__}: {e}"[:500])
            raise TrialError(str(e)) from e
        for key in ("val_loss", "parameters", "flops", "tokens", "steps", "wall_s"):
            trial.set_user_attr(key, summary.get(key))
        if not summary["complete"]:
            trial.set_user_attr("interrupted", True)
            raise KeyboardInterrupt
        if report is not None and report.pruned_at is not None:
            trial.set_user_attr("pruned_at", report.pruned_at)
            raise optuna.TrialPruned(f"pruned at step {report.pruned_at}")
        value = summary.get("val_loss")
        if value is None or not math.isfinite(value):
            trial.set_user_attr("error", f"validation loss is {value}: the run diverged")
            raise TrialError(trial.user_attrs["error"])
        return float(value)

    try:
        while True:
            _reap_dead_local_trials(study)
            _retry_interrupted(study)
            done, running = _count(study)
            if done + running >= n_trials:
                break
            current.clear()
            with _quiet_optuna():
                study.optimize(objective, n_trials=1, catch=(TrialError, _Surplus))
            t = next((t for t in study.get_trials(deepcopy=False) if t.number == current.get("number")), None)
            if t is not None and t.user_attrs.get("surplus"):
                continue  # another worker claimed the last slot first: count again (and stop)
            if t is not None and "error" in t.user_attrs:
                log.warning("trial %d failed: %s", t.number, t.user_attrs["error"])
            if t is not None and on_trial_end:
                on_trial_end(trial_row(t))
    except KeyboardInterrupt:
        result.interrupted = True
    finally:
        result.ranking, result.failed, result.running = ranking(study)
        result.pruned = pruned_trials(study)
        write_ranking(out_dir / "ranking.json", result)
    return result


class _Reporter:
    """The loop's `on_eval` hook: report each validation loss to the trial; end a pruned run cleanly."""

    def __init__(self, trial: optuna.Trial):
        self.trial, self.pruned_at = trial, None

    def __call__(self, run, metrics: dict) -> None:
        value = metrics.get("val_loss")
        if self.pruned_at is not None or value is None or not math.isfinite(value) or run.step >= run.total_steps:
            return  # the final eval is the trial's value, not an intermediate one
        self.trial.report(float(value), run.step)
        if self.trial.should_prune():
            self.pruned_at = run.step
            run.finish(f"pruned by the sweep at step {run.step} (val loss {value:.4f})")


def trial_row(t) -> dict:
    """One trial as ranking.json lists it: number, value, its recorded attributes and parameters."""
    attrs = {k: v for k, v in t.user_attrs.items() if k not in ("worker", "retry_of", "interrupted")}
    first = [k for k in _FIRST if k in attrs]  # what a reader looks for first, then the rest by name
    attrs = {**{k: attrs[k] for k in first}, **{k: v for k, v in attrs.items() if k not in first}}
    return {"trial": t.number, "state": t.state.name.lower(), "val_loss": t.value, **attrs, "params": t.params}


_FIRST = ("spec", "overrides", "total_heads", "layers", "heads", "kv_heads", "width", "head_dim", "ffn_mult",
          "parameters", "flops", "tokens", "steps", "wall_s", "run_dir")


def ranking(study: optuna.Study) -> tuple[list[dict], list[dict], int]:
    """(complete trials best first, failed-for-good trials, number still running)."""
    trials = study.get_trials(deepcopy=False)
    complete = sorted((t for t in trials if t.state == TrialState.COMPLETE), key=lambda t: (t.value, t.number))
    rows = [{"rank": i + 1, **trial_row(t)} for i, t in enumerate(complete)]
    failed = [trial_row(t) for t in trials if t.state == TrialState.FAIL and "error" in t.user_attrs]
    return rows, failed, sum(t.state == TrialState.RUNNING for t in trials)


def pruned_trials(study: optuna.Study) -> list[dict]:
    """Trials the pruner stopped, lowest last-reported validation loss first."""
    rows = [trial_row(t) for t in study.get_trials(deepcopy=False, states=(TrialState.PRUNED,))]
    return sorted(rows, key=lambda r: (r["val_loss"] is None, r["val_loss"] or 0.0, r["trial"]))


def write_ranking(path: Path, result: StudyResult) -> None:
    data = {"study": result.study_name, "objective": "val_loss (lower is better)",
            "complete": len(result.ranking), "failed": result.failed, "running": result.running,
            "pruned": result.pruned, "trials": result.ranking}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")  # workers sharing OUT each write their own
    tmp.write_text(json.dumps(data, indent=1, default=str) + "\n")
    os.replace(tmp, path)  # a reader never sees half a file


def _count(study) -> tuple[int, int]:
    """(finished for good, running): complete and pruned trials, and failures that will not be retried."""
    done = running = 0
    for t in study.get_trials(deepcopy=False):
        done += t.state in (TrialState.COMPLETE, TrialState.PRUNED) or (t.state == TrialState.FAIL and
                                                                        "error" in t.user_attrs)
        running += t.state == TrialState.RUNNING  # WAITING ones are retries this loop will run
    return done, running


class _Surplus(Exception):
    """A trial created after the study's budget was already claimed (the workers raced)."""


def _surplus(study, number: int, n_trials: int) -> bool:
    """Whether fresh trial `number` is beyond the study's budget of `n_trials` slots.

    Workers count the study and then create a trial, so two of them can both take the last slot.
    Trial numbers are handed out under the storage's lock, so the slots go in number order: each
    trial that is not a retry (a retry continues its original's slot) and not itself surplus holds
    one, and a fresh trial with `n_trials` slots before it gives its own up before any training.
    """
    trials = study.get_trials(deepcopy=False)
    me = next(t for t in trials if t.number == number)
    if "retry_of" in me.user_attrs:
        return False
    held = sum(1 for t in trials if t.number < number and "retry_of" not in t.user_attrs
               and not t.user_attrs.get("surplus"))
    return held >= n_trials


def _retry_interrupted(study) -> None:
    """Enqueue once, with the same parameters and run directory, every failed trial without an error."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)  # silent RUNNING trials of dead machines become FAIL
    trials = study.get_trials(deepcopy=False)
    retried = {t.user_attrs.get("retry_of") for t in trials}
    for t in trials:
        if (t.state == TrialState.FAIL and "error" not in t.user_attrs and not t.user_attrs.get("surplus")
                and t.number not in retried):
            attrs = {"retry_of": t.number}
            if "run_dir" in t.user_attrs:
                attrs["run_dir"] = t.user_attrs["run_dir"]
            study.enqueue_trial(t.params, user_attrs=attrs)
            log.info("trial %d was interrupted: it will continue in %s", t.number, attrs.get("run_dir", "a new run"))


def _reap_dead_local_trials(study) -> None:
    """A RUNNING trial whose worker was a process on this host that no longer exists is failed now,
    rather than after the heartbeat's grace period, so re-running a killed sweep resumes at once."""
    host = socket.gethostname()
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker_host, _, pid = str(t.user_attrs.get("worker", "")).rpartition(":")
        if worker_host == host and pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            with contextlib.suppress(Exception):  # another process may have failed it first
                study.tell(t.number, state=TrialState.FAIL)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def _quiet_optuna():
    """Optuna logs each failed trial with a traceback; ours is logged in one line (or is the user's)."""
    level = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    try:
        yield
    finally:
        optuna.logging.set_verbosity(level)


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._()=,+-]+", "_", str(text))[:80]
