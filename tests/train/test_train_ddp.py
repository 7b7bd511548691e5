"""Data parallelism under torchrun on the CPU (gloo, 2 processes): both ranks end identical."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tinylm.rundir.metrics import read_metrics


@pytest.mark.slow
def test_two_processes_end_with_identical_weights(tiny_recipe, tmp_path):
    path = tiny_recipe(train={"duration": "12 steps", "batch_size": 2, "grad_accum": 2},
                       eval={"every": 6}, checkpoint={"every": 6})
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "tinylm.cli.main", "train", str(path), "--out", str(out), "--quiet"]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    end = [r for r in read_metrics(out / "metrics.jsonl") if r.get("event") == "end"]
    assert len(end) == 1
    digests = end[0]["ranks_weights_digest"]
    assert len(digests) == 2 and digests[0] == digests[1]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["processes"] == 2 and summary["tokens"] == 12 * 2 * 2 * 32 * 2


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def _torchrun(launcher: list[str], argv: list[str], **popen) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "torch.distributed.run", *launcher, "-m", "tinylm.cli.main", *argv],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, **popen)


def _two_nodes(argv: list[str]) -> list[subprocess.Popen]:
    """Two torchrun launchers of one process each, rendezvous (c10d) on localhost: two "nodes" as a cluster has."""
    port = _free_port()
    return [_torchrun(["--nnodes=2", "--nproc_per_node=1", "--rdzv_backend=c10d", f"--rdzv_endpoint=localhost:{port}",
                       "--rdzv_id=tinylm-test", f"--node_rank={rank}"], argv) for rank in (0, 1)]


def _weights(out):
    from safetensors.torch import load_file

    from tinylm.rundir.checkpoints import latest_checkpoint

    return load_file(str(latest_checkpoint(out) / "model.safetensors"))


def _worker_of(launcher: subprocess.Popen) -> int:
    """The pid of the one training process a torchrun launcher started."""
    import time

    children = Path(f"/proc/{launcher.pid}/task/{launcher.pid}/children")
    deadline = time.time() + 120
    while time.time() < deadline and not children.read_text().split():
        time.sleep(0.05)
    return int(children.read_text().split()[0])


@pytest.mark.slow  # ~85 s on 2 loaded cores: a 1-node torchrun, then a 2-node one stopped by a signal and resumed
def test_two_nodes_of_one_process_equal_one_node_of_two_even_stopped_by_a_signal_on_one_rank(tiny_recipe, tmp_path):
    """SLURM may signal one node before the other: both ranks stop at the same step, checkpointed, and
    `--resume auto` on two nodes ends with the weights of the uninterrupted 1-node 2-process run."""
    import signal
    import time

    import torch

    steps = 30
    path = tiny_recipe(train={"duration": f"{steps} steps", "batch_size": 2, "log_every": 1},
                       eval={"every": 0, "windows": 2}, checkpoint={"every": 0})
    one = _torchrun(["--standalone", "--nproc_per_node=2"], ["train", str(path), "--out", str(tmp_path / "one"), "--quiet"])
    assert one.wait(timeout=300) == 0, one.stderr.read()[-3000:]

    out = tmp_path / "two"
    argv = ["train", str(path), "--out", str(out), "--quiet", "--resume", "auto"]
    nodes = _two_nodes(argv)
    metrics = out / "metrics.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and not (metrics.exists() and '"loss"' in metrics.read_text()):
        time.sleep(0.02)
    os.kill(_worker_of(nodes[1]), signal.SIGUSR1)  # rank 1 only
    outputs = [node.communicate(timeout=300) for node in nodes]
    assert all(node.returncode != 0 for node in nodes)
    assert "--resume auto" in outputs[0][0], outputs[0][1][-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert 0 < summary["steps"] < steps and not summary["complete"]
    assert read_metrics(metrics)[-1]["step"] == summary["steps"]  # rank 0 stopped there too (it alone writes)

    nodes = _two_nodes(argv)
    for node in nodes:
        assert node.wait(timeout=300) == 0, node.stderr.read()[-3000:]
    a, b = _weights(tmp_path / "one"), _weights(out)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["processes"] == 2 and summary["complete"]
