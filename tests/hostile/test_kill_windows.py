"""Issue 16, class 9: a run killed in any window resumes into what an uninterrupted one is.

A kill is simulated in-process by an exception no code catches (`Killed`, a BaseException) raised at the
moment named: the process state is lost as with `kill -9`, the files are as written up to then (the
metrics log is line-buffered). bench/kill_resume.py does the same with real SIGKILLs.
"""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from tinylm.cli.main import main
from tinylm.runs.execute import execute
from tinylm.rundir.checkpoints import latest_checkpoint
from tinylm.rundir.metrics import read_metrics
from tinylm.train.recipe import load_recipe

TIMING = {"tokens_per_s", "data_s", "compute_s", "memory_mb", "flops_per_s", "mfu", "wall_s", "session_wall_s"}


class Killed(BaseException):
    """What SIGKILL does to a process: nothing after it runs (no except Exception, no cleanup hook)."""


def timeless(records):
    return [{k: v for k, v in r.items() if k not in TIMING} for r in records]


def outcome(out):
    """What a run leaves, timing aside: its metrics lines, its summary, its final weights."""
    import json

    summary = {k: v for k, v in json.loads((out / "summary.json").read_text()).items() if k not in TIMING | {"out_dir"}}
    return timeless(read_metrics(out / "metrics.jsonl")), summary, load_file(str(latest_checkpoint(out) / "model.safetensors"))


def assert_same_run(a, b):
    metrics_a, summary_a, weights_a = outcome(a)
    metrics_b, summary_b, weights_b = outcome(b)
    assert metrics_b == metrics_a
    assert summary_b == summary_a and summary_b["val_loss"] is not None and summary_b["complete"]
    assert weights_a.keys() == weights_b.keys() and all(torch.equal(weights_a[k], weights_b[k]) for k in weights_a)


def recipe_of(tiny_recipe, *overrides, methods=None):
    sections = {"train": {"duration": "12 steps", "batch_size": 2, "lr": 3e-3, "log_every": 2, "precision": "fp32"},
                "model": {"name": "L2-2-16x2", "flavour": "llama"}, "data": {"seq_len": 16},
                "eval": {"every": 6, "windows": 2, "batch_size": 2}, "checkpoint": {"every": 4, "keep": 3}}
    if methods:
        sections["methods"] = methods
    return tiny_recipe(**sections), list(overrides)


def kill_at(monkeypatch, target, name, when=lambda *a, **k: True):
    """Make `target.name` raise Killed (once) when `when(*its args)` holds."""
    original = getattr(target, name)

    def killer(*args, **kwargs):
        if when(*args, **kwargs):
            monkeypatch.setattr(target, name, original)
            raise Killed
        return original(*args, **kwargs)
    monkeypatch.setattr(target, name, killer)


def _final_eval(run, *_):
    return run.step == run.total_steps


@pytest.mark.parametrize("window", ["before-final-eval", "before-end-event", "before-summary"])
def test_a_run_killed_after_its_last_checkpoint_finishes_on_resume(window, tiny_recipe, tmp_path, monkeypatch):
    """The loop checkpoints step 12 (checkpoint.every 4), then evaluates, logs `end`, checkpoints again and
    execute writes summary.json. Killed in between, the resumed run did nothing (val_loss null, no `end`)."""
    import tinylm.runs.execute as execute_module
    import tinylm.train.loop as loop

    path, overrides = recipe_of(tiny_recipe)
    recipe = load_recipe(str(path), overrides)
    execute(recipe, tmp_path / "straight")
    if window == "before-final-eval":
        kill_at(monkeypatch, loop, "_eval", _final_eval)
    elif window == "before-end-event":  # the final eval line is written, the end event not
        kill_at(monkeypatch, loop.distributed, "gather_digests")
    else:
        kill_at(monkeypatch, execute_module, "write_json")
    with pytest.raises(Killed):
        execute(recipe, tmp_path / "killed")
    assert not (tmp_path / "killed" / "summary.json").exists()
    execute(recipe, tmp_path / "killed", resume=True)
    assert_same_run(tmp_path / "straight", tmp_path / "killed")
    assert [r["event"] for r in read_metrics(tmp_path / "killed" / "metrics.jsonl") if "event" in r] == ["end"]


def test_resume_starts_a_run_where_no_checkpoint_is_yet(tiny_recipe, tmp_path, monkeypatch):
    """`--resume` on a new or empty directory, or on a run killed before its first checkpoint, starts the run:
    a requeued job's command line works whatever its first session got to."""
    import tinylm.train.loop as loop

    path, _ = recipe_of(tiny_recipe)
    assert main(["train", str(path), "--out", str(tmp_path / "straight"), "--quiet"]) == 0
    assert main(["train", str(path), "--out", str(tmp_path / "new"), "--resume", "--quiet"]) == 0
    (tmp_path / "empty").mkdir()
    assert main(["train", str(path), "--out", str(tmp_path / "empty"), "--resume", "--quiet"]) == 0
    kill_at(monkeypatch, loop, "train_step", lambda run, scaler: run.step == 3)  # before the checkpoint of step 4
    with pytest.raises(Killed):
        main(["train", str(path), "--out", str(tmp_path / "early"), "--quiet"])
    assert (tmp_path / "early" / "metrics.jsonl").exists() and not (tmp_path / "early" / "checkpoints").exists()
    assert main(["train", str(path), "--out", str(tmp_path / "early"), "--resume", "--quiet"]) == 0
    for out in ("new", "empty", "early"):
        assert_same_run(tmp_path / "straight", tmp_path / out)


@pytest.mark.parametrize("methods", [[{"forget": {"every": 4}}], [{"grow": {"incremental": "8 steps"}}]],
                         ids=["forget", "grow"])
def test_an_event_at_a_checkpoint_step_is_logged_once_after_resume(methods, tiny_recipe, tmp_path, monkeypatch):
    """forget's reinit and grow's phases happen at a step's start, after that step's checkpoint: a run killed
    just after one resumed with the event logged twice (`reinit@4`, `grow_phase@4`)."""
    import tinylm.train.loop as loop

    path, overrides = recipe_of(tiny_recipe, methods=methods)
    recipe = load_recipe(str(path), overrides)
    execute(recipe, tmp_path / "straight")
    events = [(r["event"], r["step"]) for r in read_metrics(tmp_path / "straight" / "metrics.jsonl") if "event" in r]
    assert any(step == 4 for _, step in events)  # the case: an event at the checkpoint step
    kill_at(monkeypatch, loop, "train_step", lambda run, scaler: run.step == 5)  # after step 5's log line
    with pytest.raises(Killed):
        execute(recipe, tmp_path / "killed")
    execute(recipe, tmp_path / "killed", resume=True)
    assert_same_run(tmp_path / "straight", tmp_path / "killed")
