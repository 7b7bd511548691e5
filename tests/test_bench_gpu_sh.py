"""bench/gpu.sh, written for a CUDA machine, checked here without one: its syntax, its dry run's plan (the
three throughput configurations eager and compiled, FSDP said to be not implemented or skipped, the fused
cross-entropy step), and bench/fused_ce.py's JSON on a tiny CPU problem (the fused kernels skipped)."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"
pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")


def _gpu_sh(*args, gpus: int, tmp_path) -> subprocess.CompletedProcess:
    env = dict(os.environ, GPUS=str(gpus), PYTHON=sys.executable)
    return subprocess.run(["bash", str(BENCH / "gpu.sh"), *args, "--out", str(tmp_path / "r")], env=env,
                          capture_output=True, text=True, timeout=60)


def test_gpu_sh_parses():
    assert subprocess.run(["bash", "-n", str(BENCH / "gpu.sh")], capture_output=True).returncode == 0


@pytest.mark.parametrize("gpus,fsdp", [(1, "skipped: it needs more than one GPU (1 here)"),
                                       (2, "FSDP smoke test: not implemented")])
def test_dry_run_prints_the_plan_and_runs_nothing(tmp_path, gpus, fsdp):
    done = _gpu_sh("--dry-run", gpus=gpus, tmp_path=tmp_path)
    assert done.returncode == 0, done.stderr
    would = [line for line in done.stdout.splitlines() if line.startswith("would run: ")]
    assert len(would) == 3
    for line, flag, name in zip(would, ("--eager", "--hf-compile"), ("eager", "compiled")):
        assert f"bench/throughput.py --json {flag} --configs 16m:128x512 345m:32x512 forgetter:12x512" in line
        assert line.endswith(f"gpu-throughput-{name}.json")
    assert "bench/fused_ce.py --json" in would[2] and would[2].endswith("gpu-fused-ce.json")
    assert fsdp in done.stdout
    assert not (tmp_path / "r").exists()  # a dry run writes nothing


def test_without_a_gpu_it_says_so_and_a_bad_option_is_refused(tmp_path):
    done = _gpu_sh(gpus=0, tmp_path=tmp_path)
    assert done.returncode == 2 and "no CUDA device" in done.stderr and "--dry-run" in done.stderr
    done = _gpu_sh("--dryrun", gpus=1, tmp_path=tmp_path)
    assert done.returncode == 2 and "unknown option --dryrun" in done.stderr
    assert not (tmp_path / "r").exists()


def test_fused_ce_measures_pytorch_and_skips_fused_kernels_on_cpu():
    done = subprocess.run([sys.executable, str(BENCH / "fused_ce.py"), "--json", "--device", "cpu", "--tokens",
                           "16", "--hidden", "8", "--vocab", "64", "--dtype", "fp32", "--steps", "1", "--warmup",
                           "0"], capture_output=True, text=True, timeout=120, check=True)
    result = json.loads(done.stdout)
    assert result["vocab"] == 64 and result["pytorch"]["ms_per_step"] > 0
    assert 3.5 < result["pytorch"]["loss"] < 5.0  # about log(64) = 4.16 for near-uniform logits
    assert result["liger-kernel"].startswith(("skipped", "not available"))
    assert result["cut-cross-entropy"].startswith(("skipped", "not available"))
