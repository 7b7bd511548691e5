"""experiments/combinations.py end to end at --quick sizes: both parts report finite numbers over seeds, and
the combined arms really combine (their runs' metrics hold both methods' events)."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tinylm.rundir.metrics import read_metrics

REPO = Path(__file__).resolve().parents[2]


def events(run_dir) -> set:
    return {r["event"] for r in read_metrics(Path(run_dir) / "metrics.jsonl") if "event" in r}


def finite(*values) -> bool:
    return all(isinstance(v, (int, float)) and math.isfinite(v) for v in values)


@pytest.fixture(scope="module")
def quick(tmp_path_factory, fixtures):
    tmp = tmp_path_factory.mktemp("combinations")
    paths = [str(REPO / "src"), str(REPO / "experiments"), os.environ.get("PYTHONPATH", "")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in paths if p)}
    done = subprocess.run([sys.executable, str(REPO / "experiments" / "combinations.py"), "--quick", "--out",
                           str(tmp / "out"), "--german", str(fixtures / "german" / "grimm-2-head.txt")],
                          cwd=tmp, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return tmp / "out", json.loads((tmp / "out" / "combinations.json").read_text()), json.loads(done.stdout)


@pytest.mark.slow
def test_quick_run_reports_both_parts_over_seeds_with_finite_numbers(quick):
    out, report, printed = quick
    assert report["result"] == str(out / "combinations.json") and printed["result"] == report["result"]
    assert (out / "combinations-sleep-distill.png").stat().st_size > 0
    assert (out / "combinations-grow-forget.png").stat().st_size > 0
    groups = report["sleep_distill"]["groups"]
    assert len(groups["teacher"]["runs"]) == 2 and finite(groups["ensemble"]["val_loss"])
    for arm in ("teacher", "student", "student+sleep"):
        runs = groups[arm]["runs"]
        assert len(runs) >= 2 and groups[arm]["val_loss"]["n"] == len(runs)
        assert all(finite(r["val_loss"], r["flops"]) for r in runs), runs
    arms = report["grow_forget"]["arms"]
    assert set(arms) == {"plain", "forget", "grow", "grow+forget"} and finite(report["grow_forget"]["target_loss"])
    for arm, r in arms.items():
        assert len(r["runs"]) >= 2, arm
        for key in ("pretrain_flops", "adapt_val_loss_de", "adapt_loss_auc", "adapt_final_loss", "steps_to_target"):
            assert r[key]["n"] == len(r["runs"]) and finite(r[key]["mean"], r[key]["std"]), (arm, key)
    assert all(report["checks"].values()), report["checks"]


@pytest.mark.slow
def test_the_combined_arms_ran_both_methods(quick):
    out, report, _ = quick
    groups = report["sleep_distill"]["groups"]
    for r in groups["student+sleep"]["runs"]:  # slept (episodes ended, the optimizer was reset) and distilled
        assert {"episode_end", "reset_optimizer"} <= events(r["run"]), r["run"]
        assert r["episodes"] and r["teacher_flops"] > 0
    for r in groups["student"]["runs"]:
        assert "episode_end" not in events(r["run"]) and r["teacher_flops"] > 0
    for r in report["grow_forget"]["arms"]["grow+forget"]["runs"]:  # grew and forgot in one run
        assert {"truncate", "grow", "grow_phase", "reinit"} <= events(r["run"]), r["run"]
    assert "reinit" not in events(report["grow_forget"]["arms"]["grow"]["runs"][0]["run"])
    assert "grow" not in events(report["grow_forget"]["arms"]["forget"]["runs"][0]["run"])
