"""A run with `data.workers` trains on the same batches as one without, resumes exactly, and ends its workers."""

from __future__ import annotations

import multiprocessing

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

    with pytest.raises(interruption):
        execute(_with_workers(recipe, 2), tmp_path / "run", on_step=fail)
    assert not multiprocessing.active_children()


def test_workers_out_of_range_are_refused_at_load():
    base = {"data": {"store": "s"}, "model": {"name": "L2-4-32x2"}}
    for bad in (-1, 65, "two"):
        with pytest.raises(UserError, match="data.workers"):
            recipe_from_dict({**base, "data": {"store": "s", "workers": bad}})
