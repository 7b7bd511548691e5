"""Generic tests over every registered method (plus a probe that exercises every event).

Each method must train -> checkpoint -> resume -> identical result, alone; a method that breaks
resumption cannot land. A method that needs options to run at all (distill: teachers) takes its
example options from tests/methods/conftest.py.
"""

from dataclasses import dataclass

import pytest

from tinylm.methods import Method, register, registered
from tinylm.methods.base import MethodConfig
from tinylm.runs.execute import execute
from tinylm.train.recipe import load_recipe


@dataclass
class ProbeConfig(MethodConfig):
    weight: float = 0.01


@register
class Probe(Method):
    """Adds a small L2 term at the loss event and counts every event it sees (state: the counts)."""
    name = "probe"
    Config = ProbeConfig

    def __init__(self, config):
        super().__init__(config)
        self.counts = {}

    def _count(self, event):
        self.counts[event] = self.counts.get(event, 0) + 1

    def on_start(self, run): self._count("start")
    def on_step_start(self, run): self._count("step_start")
    def on_after_backward(self, run): self._count("after_backward")
    def on_step_end(self, run): self._count("step_end")
    def on_eval(self, run, metrics):
        assert "val_loss" in metrics
        self._count("eval")
    def on_stop(self, run): self._count("stop")

    def on_loss(self, run, batch, logits, loss):
        self._count("loss")
        return self.config.weight * logits.float().pow(2).mean()

    def state_dict(self):
        return {"counts": dict(self.counts)}

    def load_state_dict(self, state):
        self.counts = dict(state["counts"])


def test_events_arrive_in_order_and_count(tiny_recipe, tmp_path):
    recipe = load_recipe(str(tiny_recipe(methods=[{"probe": {"weight": 0.0}}])),
                         ["train.duration=10", "train.grad_accum=2", "eval.every=5"])
    from tinylm.train.build import build_run
    from tinylm.train.loop import train
    run = build_run(recipe)
    train(run)
    assert run.methods[0].counts == {"start": 1, "step_start": 10, "loss": 20, "after_backward": 10,
                                     "step_end": 10, "eval": 2, "stop": 1}


def test_a_method_loss_term_changes_training(tiny_recipe, tmp_path):
    plain = execute(load_recipe(str(tiny_recipe()), ["train.duration=5"]), tmp_path / "a")
    probed = execute(load_recipe(str(tiny_recipe(methods=[{"probe": {"weight": 1.0}}])), ["train.duration=5"]),
                     tmp_path / "b")
    assert plain["val_loss"] != probed["val_loss"]


@pytest.mark.parametrize("name", sorted(registered()))
def test_method_resumes_exactly(name, tiny_recipe, resumes_exactly, method_entry):
    recipe = load_recipe(str(tiny_recipe(methods=[method_entry(name)])), ["checkpoint.every=0"])
    resumes_exactly(recipe, stop_at=17)
