"""Data parallelism under torchrun on the CPU (gloo, 2 processes): both ranks end identical."""

import json
import os
import subprocess
import sys

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
