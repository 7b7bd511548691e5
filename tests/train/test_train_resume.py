"""Stop at any step, resume, and get bit-for-bit the weights of an uninterrupted run."""

import json

import pytest
import torch
from safetensors.torch import load_file

from tinylm.runs.execute import execute
from tinylm.rundir.checkpoints import latest_checkpoint
from tinylm.rundir.metrics import read_metrics
from tinylm.train.recipe import load_recipe


def _final_weights(out):
    return load_file(str(latest_checkpoint(out) / "model.safetensors"))


def test_40_straight_equals_20_resume_20(tiny_recipe, tmp_path):
    recipe = load_recipe(str(tiny_recipe(checkpoint={"every": 0})))
    straight = execute(recipe, tmp_path / "straight")
    assert straight["complete"] and straight["steps"] == 40

    def stop_at_20(run, record):
        if run.step == 20:
            run.stop_requested = True

    first = execute(recipe, tmp_path / "resumed", on_step=stop_at_20)
    assert not first["complete"] and first["steps"] == 20
    assert latest_checkpoint(tmp_path / "resumed").name == "step-00000020"
    second = execute(recipe, tmp_path / "resumed", resume=True)
    assert second["complete"] and second["steps"] == 40

    a, b = _final_weights(tmp_path / "straight"), _final_weights(tmp_path / "resumed")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert second["val_loss"] == straight["val_loss"]
    # The metrics stream of the resumed run reads like the straight one: no duplicated steps.
    steps = [r["step"] for r in read_metrics(tmp_path / "resumed" / "metrics.jsonl") if "loss" in r]
    assert steps == sorted(set(steps)) and steps[-1] == 40


def test_resume_refuses_a_changed_recipe_unless_forced(tiny_recipe, tmp_path):
    import pytest

    from tinylm.errors import UserError

    recipe = load_recipe(str(tiny_recipe()), ["train.duration=20"])
    execute(recipe, tmp_path / "run")
    changed = load_recipe(str(tiny_recipe()), ["train.duration=30", "train.lr=0.01"])
    with pytest.raises(UserError, match=r"train.duration, train.lr"):
        execute(changed, tmp_path / "run", resume=True)
    summary = execute(changed, tmp_path / "run", resume=True, force=True)
    assert summary["steps"] == 30


def test_checkpoint_contents_and_atomicity(tiny_recipe, tmp_path):
    recipe = load_recipe(str(tiny_recipe()), ["train.duration=20", "checkpoint.every=10", "checkpoint.keep=1"])
    execute(recipe, tmp_path / "run")
    ckpts = tmp_path / "run" / "checkpoints"
    assert sorted(p.name for p in ckpts.iterdir()) == ["latest", "step-00000020"]
    ckpt = latest_checkpoint(tmp_path / "run")
    assert {p.name for p in ckpt.iterdir()} == {"model.safetensors", "model_config.json", "state.json",
                                               "state.safetensors", "tokenizer.json", "tokenizer_meta.json"}
    state = json.loads((ckpt / "state.json").read_text())
    assert state["counters"]["step"] == 20 and state["batches"]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["tokens"] == 20 * 4 * 32 and summary["flops"] > 0


@pytest.mark.slow
def test_ctrl_c_checkpoints_and_resume_completes(tiny_recipe, tmp_path):
    import signal
    import subprocess
    import sys
    import time

    path = tiny_recipe(train={"duration": "400 steps", "log_every": 1}, checkpoint={"every": 0})
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "tinylm.cli.main", "train", str(path), "--out", str(out), "--quiet"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and not ((out / "metrics.jsonl").exists()
                                          and "loss" in (out / "metrics.jsonl").read_text()):
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert "--resume" in stdout
    stopped = latest_checkpoint(out)
    assert stopped is not None and 0 < int(stopped.name.split("-")[1]) < 400
    done = subprocess.run(cmd + ["--resume", "--set", "train.duration=60 steps", "--force"], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert json.loads((out / "summary.json").read_text())["steps"] == max(60, int(stopped.name.split("-")[1]))
