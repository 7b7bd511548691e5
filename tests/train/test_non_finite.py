"""Non-finite training (issue 16, class 5): a loss or gradient norm that becomes NaN/inf never ends as a
"finished" run. With `train.on_nan: stop` (the default) the run stops with one line naming the step and the fix,
exit status 3, its last good checkpoint still the latest and no NaN checkpoint written; with `rollback` it goes
back to the last checkpoint with a lower learning rate, logs a `nan_rollback` event, and finishes.
Before: a poisoned batch or `lr: 1` trained on NaN weights to the end, exit 0, val loss NaN in summary.json.
"""

import json
import math

import pytest
import torch
import yaml
from safetensors.torch import load_file

from tinylm.cli.main import main
from tinylm.rundir.checkpoints import latest_checkpoint


def poison_step(monkeypatch, at: int, times: int = 1):
    """The `times` first optimizer steps numbered `at` see a NaN loss (one poisoned batch), as a hardware fault or
    a bad record would make it: NaN gradients, NaN weights after the step, NaN from then on."""
    import tinylm.train.loop as loop

    real, left = loop.train_step, [times]

    def step(run, scaler):
        if run.step + 1 != at or not left[0]:
            return real(run, scaler)
        left[0] -= 1
        objective = run.objective

        def poisoned(*args, **kwargs):
            total, loss, kl, logits = objective(*args, **kwargs)
            return total * float("nan"), loss * float("nan"), kl, logits
        run.objective = poisoned
        try:
            return real(run, scaler)
        finally:
            run.objective = objective
    monkeypatch.setattr(loop, "train_step", step)


def _recipe(tmp_path, tiny_store, **train):
    path = tmp_path / "nan.yaml"
    path.write_text(yaml.safe_dump({
        "name": "nan", "data": {"store": str(tiny_store), "seq_len": 16},
        "model": {"name": "L1-2-16x2", "flavour": "llama"},
        "train": {"duration": "12 steps", "batch_size": 2, "lr": 3e-3, "log_every": 2, "precision": "fp32", **train},
        "eval": {"windows": 2, "batch_size": 2}, "checkpoint": {"every": 4, "keep": 5}}))
    return path


def _train(capsys, recipe, out, *extra):
    capsys.readouterr()
    code = main(["train", str(recipe), "--out", str(out), "--quiet", *extra])
    return code, capsys.readouterr().err.strip()


def _finite(ckpt) -> bool:
    return all(torch.isfinite(t).all() for t in load_file(str(ckpt / "model.safetensors")).values())


def test_a_poisoned_batch_stops_the_run_with_its_last_good_checkpoint(tiny_store, tmp_path, capsys, monkeypatch):
    poison_step(monkeypatch, at=7)
    out = tmp_path / "run"
    code, err = _train(capsys, _recipe(tmp_path, tiny_store), out)
    assert code == 3, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    for needle in ("diverged at step 7", "nan", "step-00000004 stays the latest", "train.lr",
                   "train.on_nan: rollback", "--resume --force"):
        assert needle in err, err
    assert latest_checkpoint(out).name == "step-00000004" and _finite(latest_checkpoint(out))
    assert sorted(p.name for p in (out / "checkpoints").glob("step-*")) == ["step-00000004"]  # no NaN one
    assert not (out / "summary.json").exists()  # not a finished run
    # the fix the line gives works: resume from step 4 at a lower rate and finish
    monkeypatch.undo()
    code = main(["train", "--out", str(out), "--resume", "--force", "--set", "train.lr=1e-3", "--quiet"])
    summary = json.loads((out / "summary.json").read_text())
    assert code == 0 and summary["complete"] and math.isfinite(summary["val_loss"])


def test_rollback_goes_back_lowers_the_lr_and_finishes(tiny_store, tmp_path, capsys, monkeypatch):
    poison_step(monkeypatch, at=7)
    out = tmp_path / "run"
    code, err = _train(capsys, _recipe(tmp_path, tiny_store, on_nan="rollback", on_nan_lr_factor=0.25), out)
    assert code == 0, err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["complete"] and summary["steps"] == 12 and math.isfinite(summary["val_loss"])
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    rollbacks = [r for r in lines if r.get("event") == "nan_rollback"]
    assert len(rollbacks) == 1, rollbacks
    event = rollbacks[0]
    assert (event["bad_step"], event["step"], event["to"], event["rollback"]) == (7, 4, "step-00000004", 1)
    assert event["lr"] == pytest.approx(3e-3 * 0.25) and event["lr_before"] == pytest.approx(3e-3)
    assert not any(isinstance(r.get("loss"), float) and not math.isfinite(r["loss"]) for r in lines)
    assert [r["step"] for r in lines if "loss" in r and "event" not in r] == [2, 4, 6, 8, 10, 12]  # NaN lines gone
    assert all(_finite(c) for c in (out / "checkpoints").glob("step-*"))
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert config["train"]["lr"] == 3e-3  # the recipe stays what the user wrote; the lowered rate is run state


def test_rollback_before_the_first_checkpoint_returns_to_the_start(tiny_store, tmp_path, capsys, monkeypatch):
    poison_step(monkeypatch, at=2)
    out = tmp_path / "run"
    code, err = _train(capsys, _recipe(tmp_path, tiny_store, on_nan="rollback"), out)
    assert code == 0, err
    event = next(json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines() if "nan_rollback" in x)
    assert (event["bad_step"], event["step"], event["to"]) == (2, 0, "the run's start")
    assert json.loads((out / "summary.json").read_text())["complete"]


def test_rollbacks_are_capped(tiny_store, tmp_path, capsys, monkeypatch):
    poison_step(monkeypatch, at=7, times=5)  # the same step fails again after every rollback
    out = tmp_path / "run"
    code, err = _train(capsys, _recipe(tmp_path, tiny_store, on_nan="rollback", on_nan_retries=2), out)
    assert code == 3 and len(err.splitlines()) == 1, err
    assert "diverged at step 7 again after 2 rollback(s)" in err and "on_nan_retries" in err, err
    assert latest_checkpoint(out).name == "step-00000004" and _finite(latest_checkpoint(out))
    assert not (out / "summary.json").exists()


def _absurd(tiny_store, lr=1e3, **train):
    """A recipe whose learning rate is absurd: no recipe file can say lr 1e3 any more (train.lr is refused above 1
    at load), but a run built through the API, or a method's set_hyperparameters, can; AdamW at lr 1 stays finite
    on this model (measured: loss 10.8 -> 8 over 60 steps, every flavour), at 1e3 its gradient norm is NaN by
    step 2."""
    import dataclasses

    from tinylm.train.recipe import recipe_from_dict

    recipe = recipe_from_dict({
        "name": "absurd", "data": {"store": str(tiny_store), "seq_len": 16},
        "model": {"name": "L1-2-16x2", "flavour": "llama"},
        "train": {"duration": "12 steps", "batch_size": 2, "weight_decay": 0.0, "log_every": 1, "precision": "fp32",
                  **train},
        "eval": {"windows": 2, "batch_size": 2}, "checkpoint": {"every": 1, "keep": 20}})
    return dataclasses.replace(recipe, train=dataclasses.replace(recipe.train, lr=lr))


def test_an_absurd_learning_rate_stops_the_run(tiny_store, tmp_path):
    from tinylm.errors import TrainingDiverged
    from tinylm.runs.execute import execute

    out = tmp_path / "run"
    with pytest.raises(TrainingDiverged, match=r"diverged at step 2: .*gradient norm nan.*step-00000001 stays the "
                                               r"latest.*train.lr \(now 1000\)"):
        execute(_absurd(tiny_store), out)
    assert latest_checkpoint(out).name == "step-00000001" and _finite(latest_checkpoint(out))
    assert sorted(p.name for p in (out / "checkpoints").glob("step-*")) == ["step-00000001"]
    assert not (out / "summary.json").exists() and not (out / "tinylm.lock").exists()
    last = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])  # the run's last word: why it ended
    assert last["event"] == "diverged" and "diverged at step 2" in last["reason"]
    from tinylm.rundir.index import list_runs
    assert list_runs([out], index_path=tmp_path / "index.sqlite").rows[0]["status"] == "failed"


def test_an_absurd_learning_rate_recovers_by_rollback(tiny_store, tmp_path):
    from tinylm.runs.execute import execute

    out = tmp_path / "run"
    summary = execute(_absurd(tiny_store, on_nan="rollback", on_nan_lr_factor=1e-3), out)
    assert summary["complete"] and math.isfinite(summary["val_loss"])
    events = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines() if "nan_rollback" in x]
    # step 1 at lr 1e3 left finite but ruined weights: back there at lr 1 it diverges again before a new
    # checkpoint, so the second rollback goes further back, to the start, at lr 1e-3 (the metrics of the run from
    # there on are those of steps 1.., so the first rollback's line, at step 1, went with them)
    assert [(e["bad_step"], e["step"], e["to"], e["rollback"], e["lr_before"], e["lr"]) for e in events] == [
        (2, 0, "the run's start", 2, pytest.approx(1.0), pytest.approx(1e-3))]
    assert all(_finite(c) for c in (out / "checkpoints").glob("step-*"))


@pytest.mark.parametrize("setting, needle", [("train.on_nan=maybe", "stop, rollback"),
                                             ("train.on_nan_lr_factor=1", "train.on_nan_lr_factor"),
                                             ("train.on_nan_lr_factor=0", "train.on_nan_lr_factor"),
                                             ("train.on_nan_retries=-1", "train.on_nan_retries")])
def test_on_nan_keys_are_checked_at_load(tiny_store, tmp_path, one_line_error, setting, needle):
    out = tmp_path / "run"
    one_line_error(["train", str(_recipe(tmp_path, tiny_store)), "--out", str(out), "--set", setting], needle)
    assert not out.exists()
