"""experiments/common.run_recipe takes up a run already in its directory only when the recipe is that run's
but for its length: a grow run laid out for another N must not be resumed with the new plan."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "experiments"))
from common import run_recipe  # noqa: E402


def _recipe(store, steps: int, lr: float = 3e-3) -> dict:
    return {"name": "t", "data": {"store": str(store), "seq_len": 32, "sampler": "windows"},
            "model": {"name": "L2-4-32x2", "flavour": "llama"},
            "train": {"duration": f"{steps} steps", "batch_size": 4, "lr": lr, "schedule": "constant", "warmup": 0,
                      "log_every": 2, "precision": "fp32"},
            "eval": {"every": 4, "windows": 4, "batch_size": 4}, "checkpoint": {"every": 0}}


def test_a_finished_run_is_extended_only_by_its_own_recipe(tmp_path, tiny_store):
    out = tmp_path / "run"
    assert run_recipe(_recipe(tiny_store, 4), out)["total_steps"] == 4
    with pytest.raises(SystemExit, match=r"holds another run \(its recipe differs in train\.lr\)"):
        run_recipe(_recipe(tiny_store, 8, lr=1e-3), out)
    assert json.loads((out / "summary.json").read_text())["total_steps"] == 4  # untouched
    assert run_recipe(_recipe(tiny_store, 8), out)["total_steps"] == 8  # the same recipe, longer: extended
