"""Fixtures for method tests: tiny trained teachers, and the options a method needs to run at all.

The generic tests run every registered method with `method_entry(name)`: the bare name, or the name
with the example options below when the method cannot run without some (distill needs teachers).
"""

import pytest
import yaml
from tinylm.methods.base import Method


def train_tiny(out_dir, store, seed: int = 0, steps: int = 20, **model):
    """A tiny Llama run on `store` (the same shape as tests/conftest.py's tiny_recipe)."""
    from tinylm.runs.execute import execute
    from tinylm.train.recipe import load_recipe

    recipe = {"name": out_dir.name, "data": {"store": str(store), "seq_len": 32, "sampler": "windows"},
              "model": {"name": "L2-4-32x2", "flavour": "llama", **model},
              "train": {"duration": f"{steps} steps", "batch_size": 4, "lr": 3e-3, "log_every": 5, "seed": seed,
                        "precision": "fp32"},
              "eval": {"every": 0, "windows": 8, "batch_size": 8}, "checkpoint": {"every": 0}}
    path = out_dir.parent / f"{out_dir.name}.yaml"
    path.write_text(yaml.safe_dump(recipe))
    execute(load_recipe(str(path)), out_dir)
    return out_dir


@pytest.fixture(scope="session")
def teacher_runs(tmp_path_factory, tiny_store):
    """Two tiny teachers (seeds 1 and 2) on the Alice store, trained once per session."""
    root = tmp_path_factory.mktemp("teachers")
    return [train_tiny(root / f"teacher-{seed}", tiny_store, seed=seed) for seed in (1, 2)]


# Options a method needs to run at all in the generic tests; a callable gets the pytest `request`,
# so what it needs (trained teachers) is built only when that method's test runs.
EXAMPLE_OPTIONS = {
    "distill": lambda request: {"teachers": [str(request.getfixturevalue("teacher_runs")[0])]},
}


@pytest.fixture
def method_entry(request):
    """`method_entry(name, **options)` -> a recipe `methods:` entry that runs (example options merged)."""
    def entry(name: str, **options):
        example = EXAMPLE_OPTIONS.get(name, {})
        merged = {**(example(request) if callable(example) else example), **options}
        return {name: merged} if merged else name
    return entry


class Watch(Method):
    """A stand-in method that records `(run.step, fn(run))` at every step_start, after the methods
    before it in the list, so a test can see what those methods did step by step."""
    name = "watch"

    def __init__(self, fn):
        self.fn, self.seen = fn, []


    def on_step_start(self, run):
        self.seen.append((run.step, self.fn(run)))

    @property
    def values(self) -> list:
        return [value for _, value in self.seen]


@pytest.fixture(name="Watch")
def watch_class():
    return Watch
