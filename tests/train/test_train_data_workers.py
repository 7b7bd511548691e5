"""A run with `data.workers` trains on the same batches as one without, resumes exactly, and ends its workers."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tinylm.errors import UserError
from tinylm.rundir.checkpoints import latest_checkpoint
from tinylm.runs.execute import execute
from tinylm.train.recipe import load_recipe, recipe_from_dict

STEPS = 6


def _weights(out):
    return load_file(str(latest_checkpoint(out) / "model.safetensors"))


@pytest.fixture(scope="module")
def straight(tmp_path_factory, tiny_store):
    """A run without workers, the reference every run with workers must equal."""
    import yaml

    out = tmp_path_factory.mktemp("straight")
    recipe_path = out.parent / "straight.yaml"
    recipe_path.write_text(yaml.safe_dump(
        {"data": {"store": str(tiny_store), "seq_len": 16, "sampler": "windows"},
         "model": {"name": "L1-2-16x2", "flavour": "llama"},
         "train": {"duration": f"{STEPS} steps", "batch_size": 2, "log_every": 2, "precision": "fp32"},
         "eval": {"every": 0, "windows": 4, "batch_size": 4}, "checkpoint": {"every": 0}}))
    recipe = load_recipe(str(recipe_path))
    execute(recipe, out / "run")
    return recipe, _weights(out / "run")


def _with_workers(recipe, n):
    data = recipe.to_dict()
    data["data"]["workers"] = n
    return recipe_from_dict(data)


def test_stop_with_workers_and_resume_with_others_equals_straight(straight, tmp_path):
    recipe, reference = straight

    def stop_half_way(run, record):
        if run.step == STEPS // 2:
            run.stop_requested = True

    first = execute(_with_workers(recipe, 2), tmp_path / "run", on_step=stop_half_way)
    assert first["steps"] == STEPS // 2 and not multiprocessing.active_children()
    second = execute(_with_workers(recipe, 1), tmp_path / "run", resume=True)  # workers are a machine key
    assert second["complete"] and second["steps"] == STEPS
    weights = _weights(tmp_path / "run")
    assert all(torch.equal(weights[k], reference[k]) for k in reference)
    assert not multiprocessing.active_children()


@pytest.mark.parametrize("interruption", [RuntimeError, KeyboardInterrupt])
def test_an_interrupted_run_leaves_no_worker_behind(straight, tmp_path, interruption):
    recipe, _ = straight

    def fail(run, record):
        raise interruption("stop here")

    with pytest.raises(interruption) as caught:
        execute(_with_workers(recipe, 2), tmp_path / "run", on_step=fail)
    # While the traceback (and with it the run) is still alive, only `train` itself can have ended the workers.
    assert caught.traceback and not multiprocessing.active_children()


def test_workers_out_of_range_are_refused_at_load():
    base = {"data": {"store": "s"}, "model": {"name": "L2-4-32x2"}}
    for bad in (-1, 65, "two"):
        with pytest.raises(UserError, match="data.workers"):
            recipe_from_dict({**base, "data": {"store": "s", "workers": bad}})


def _children(pid: int) -> set[int]:
    """Processes whose parent is `pid` (Linux /proc)."""
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.add(int(stat.parent.name))
    return found


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.slow  # ~10 s: a CLI process (imports, store, model) trained until signalled
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads the process table from /proc")
def test_a_stop_signal_to_the_whole_group_checkpoints_and_leaves_no_worker(tiny_recipe, tmp_path):
    """A scheduler's SIGTERM (as a terminal's Ctrl-C) reaches every process of the group, the workers too: the run
    still stops after its step, checkpoints and ends its workers (killed workers failed it: "exited unexpectedly")."""
    path = tiny_recipe(model={"name": "L1-2-16x2", "flavour": "llama"}, data={"seq_len": 16, "workers": 2},
                       train={"duration": "100000 steps", "batch_size": 2, "grad_accum": 2, "log_every": 1},
                       eval={"every": 0, "windows": 4, "batch_size": 4}, checkpoint={"every": 0})
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "tinylm.cli.main", "train", str(path), "--out", str(out), "--quiet"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline, workers = time.time() + 60, set()
    while time.time() < deadline and not (len(workers) >= 2 and (out / "metrics.jsonl").exists()
                                          and '"loss"' in (out / "metrics.jsonl").read_text()):
        workers |= _children(proc.pid)
        time.sleep(0.1)
    assert len(workers) >= 2, "the workers never started"
    os.killpg(proc.pid, signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, (proc.returncode, stderr[-2000:])
    assert latest_checkpoint(out) is not None
    time.sleep(1)
    assert not [pid for pid in workers if _alive(pid)]


def test_workers_ignore_every_signal_that_stops_a_run():
    """A signal a run stops on (and a scheduler sends to the whole job) must not kill a worker mid-step."""
    from tinylm.data.prefetch import _ignore_stop_signals
    from tinylm.runs.execute import STOP_SIGNALS

    before = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}
    try:
        _ignore_stop_signals(0)
        assert all(signal.getsignal(sig) is signal.SIG_IGN for sig in STOP_SIGNALS)
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler)
