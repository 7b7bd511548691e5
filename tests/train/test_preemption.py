"""A scheduler's signals stop a run at a checkpoint, and `--resume auto` finishes it into the same run.

SIGUSR1 (SLURM's warning before the time limit) and SIGTERM (preemption, `scancel`) reach a real
`tinylm train` process mid-training: it exits 130 with one line naming `--resume auto`, its last
checkpoint is the step it stopped at, and the same command line with `--resume auto` ends in exactly the
run an uninterrupted one makes (weights, metrics line for line, summary; timings aside).
"""

import json
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file

from tinylm.cli.main import main
from tinylm.rundir.checkpoints import latest_checkpoint
from tinylm.rundir.metrics import read_metrics
from tinylm.runs.execute import execute
from tinylm.train.recipe import load_recipe

TIMING = {"tokens_per_s", "data_s", "compute_s", "memory_mb", "flops_per_s", "mfu", "wall_s", "session_wall_s",
          "out_dir"}


def _outcome(out):
    summary = {k: v for k, v in json.loads((out / "summary.json").read_text()).items() if k not in TIMING}
    metrics = [{k: v for k, v in r.items() if k not in TIMING} for r in read_metrics(out / "metrics.jsonl")]
    return metrics, summary, load_file(str(latest_checkpoint(out) / "model.safetensors"))


def _recipe(tiny_recipe):
    return tiny_recipe(train={"duration": "60 steps", "batch_size": 2, "log_every": 1, "threads": 1},
                       model={"name": "L2-2-16x2", "flavour": "llama"}, data={"seq_len": 16},
                       eval={"every": 30, "windows": 2, "batch_size": 2}, checkpoint={"every": 30})


def _step_of(checkpoint) -> int:
    return int(checkpoint.name.split("-")[1])


@pytest.mark.parametrize("sig", [signal.SIGUSR1, signal.SIGTERM, signal.SIGINT], ids=["SIGUSR1", "SIGTERM", "SIGINT"])
def test_each_stop_signal_ends_the_session_at_a_checkpoint_of_that_step(sig, tiny_recipe, tmp_path):
    """In process (fast): the signal arrives during step 3 (twice, but for Ctrl-C, whose second aborts);
    the run stops after it, checkpointed there."""
    import os

    recipe = load_recipe(str(tiny_recipe(train={"duration": "8 steps", "log_every": 4}, eval={"every": 0, "windows": 2},
                                         checkpoint={"every": 0})))

    def raise_signal(run, record):
        if run.step == 3:
            os.kill(os.getpid(), sig)
            if sig != signal.SIGINT:  # a scheduler may signal again (USR1, then TERM): the stop goes on
                os.kill(os.getpid(), sig)
    before = signal.signal(sig, lambda *a: None)  # were it not handled, the run would go on to step 8
    try:
        summary = execute(recipe, tmp_path / "run", on_step=raise_signal)
    finally:
        signal.signal(sig, before)
    assert summary["steps"] == 3 and not summary["complete"] and _step_of(latest_checkpoint(tmp_path / "run")) == 3
    assert signal.getsignal(sig) is not None and signal.getsignal(sig) == before  # handlers put back


@pytest.mark.slow  # ~13 s each on 2 loaded cores: two `tinylm train` processes and a reference run
@pytest.mark.parametrize("sig", [signal.SIGUSR1, signal.SIGTERM], ids=["SIGUSR1", "SIGTERM"])
def test_a_signal_checkpoints_where_it_stopped_and_resume_auto_finishes_the_same_run(sig, tiny_recipe, tmp_path):
    path = _recipe(tiny_recipe)
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "tinylm.cli.main", "train", str(path), "--out", str(out), "--quiet",
           "--resume", "auto"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    metrics = out / "metrics.jsonl"
    deadline = time.time() + 120
    while proc.poll() is None and time.time() < deadline and not (metrics.exists() and '"loss"' in metrics.read_text()):
        time.sleep(0.02)
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr[-3000:]
    assert f"--out {out} --resume auto" in stdout and "stopped at step" in stdout
    summary = json.loads((out / "summary.json").read_text())
    stopped = _step_of(latest_checkpoint(out))
    assert 0 < stopped < 60 and summary["steps"] == stopped and not summary["complete"]
    assert read_metrics(metrics)[-1]["step"] == stopped  # the step it stopped at is the last one it logged

    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)  # the same command line, again
    assert done.returncode == 0, done.stderr[-3000:]
    straight = tmp_path / "straight"
    execute(load_recipe(str(path)), straight)
    (m_a, s_a, w_a), (m_b, s_b, w_b) = _outcome(straight), _outcome(out)
    assert m_b == m_a and s_b == s_a and s_b["complete"]
    assert w_a.keys() == w_b.keys() and all(torch.equal(w_a[k], w_b[k]) for k in w_a)


def test_resume_auto_starts_a_new_run_and_finished_run_stays_finished(tiny_recipe, tmp_path, capsys):
    path = tiny_recipe(train={"duration": "4 steps", "log_every": 2}, eval={"every": 0, "windows": 2},
                       checkpoint={"every": 0})
    out = tmp_path / "run"
    argv = ["train", str(path), "--out", str(out), "--quiet", "--resume", "auto"]
    assert main(argv) == 0 and json.loads((out / "summary.json").read_text())["steps"] == 4
    lines = (out / "metrics.jsonl").read_text()
    assert main(argv) == 0 and (out / "metrics.jsonl").read_text() == lines  # nothing trained again
    assert main(["train", "--out", str(out), "--quiet", "--resume", "auto"]) == 0  # the run's own recipe


def test_resume_takes_auto_or_nothing(tiny_recipe, tmp_path, one_line_error):
    path = tiny_recipe()
    one_line_error(["train", str(path), "--out", str(tmp_path / "r"), "--resume", "always"],
                   "--resume takes `auto` or nothing", "--resume auto")
    assert not (tmp_path / "r").exists()


def test_seeds_with_resume_auto_continue_the_study(tiny_recipe, tmp_path):
    path = tiny_recipe(train={"duration": "2 steps", "log_every": 1}, eval={"every": 0, "windows": 2},
                       checkpoint={"every": 0})
    argv = ["train", str(path), "--out", str(tmp_path / "s"), "--quiet", "--seeds", "2", "--resume", "auto"]
    assert main(argv) == 0
    assert main(argv) == 0  # again: both seeds finished, skipped
    assert sorted(p.name for p in (tmp_path / "s").glob("seed[0-9]*")) == ["seed0", "seed1"]
