"""sleep (FORGETTER): the paper's policy decision by decision, per-episode overrides, bad options,
and train -> checkpoint -> resume bitwise equal with light sleeps, rollbacks and deep sleeps on both
sides of the resume point.

Validation losses are scripted (Run.evaluate replaced) so every branch of the policy is taken on
purpose; the loop's own evaluation is untouched.
"""

import pytest
import torch
from safetensors.torch import load_file

from tinylm.cli.main import main
from tinylm.errors import UserError
from tinylm.methods import build_methods
from tinylm.runs.execute import execute
from tinylm.rundir.checkpoints import latest_checkpoint
from tinylm.train.loop import train
from tinylm.rundir.metrics import read_metrics
from tinylm.train.recipe import load_recipe
from tinylm.train.run import Run
from tinylm.methods.base import Method

POLICY_EVENTS = {"snapshot", "rollback", "reset_optimizer", "rebuild_model", "finish"}


class Recorder(Method):
    """A method that records, at step_start, what the step is about to train with."""
    name = "recorder"

    def __init__(self):
        self.seen, self.weights = [], {}


    def on_step_start(self, run):
        g = run.optimizer.param_groups[0]
        self.seen.append((run.step, run.schedule.cycle_start, run.schedule.cycle_length, g["base_lr"],
                          run.train_config.weight_decay))

    def on_step_end(self, run):
        self.weights[run.step] = {k: v.clone() for k, v in run.model.state_dict().items()}


def _scripted(run, losses):
    losses = iter(losses)
    run.evaluate = lambda: {"val_loss": next(losses)}


def _events(path):
    return [r for r in read_metrics(path) if "event" in r]


def _sleep_run(make_run, tmp_path, options, losses, steps=40):
    recorder = Recorder()
    run = make_run(methods=[*build_methods([{"sleep": options}]), recorder], steps=steps, out_dir=tmp_path / "run")
    _scripted(run, losses)
    train(run)
    run.metrics.close()
    return run, recorder, _events(tmp_path / "run" / "metrics.jsonl")


def test_paper_policy_light_then_rollback_deep_then_stop_on_best(make_run, tmp_path):
    run, rec, events = _sleep_run(make_run, tmp_path, {"episode": "3 steps"}, [5.0, 4.0, 4.5, 3.9, 3.95])
    assert [e["sleep"] for e in events if e["event"] == "episode_end"] == ["light", "light", "deep", "deep", "stop"]
    assert [e["event"] for e in events if e["event"] in POLICY_EVENTS] == [
        "snapshot", "reset_optimizer",                 # episode 1: first, so the best
        "snapshot", "reset_optimizer",                 # 2: improved -> light sleep
        "rollback", "rebuild_model",                   # 3: worse -> back to episode 2, deep sleep from now on
        "snapshot", "rebuild_model",                   # 4: a deep sleep improved
        "rollback", "finish"]                          # 5: it no longer does -> episode 4's weights, stop
    assert run.step == 15 and run.finished_early
    final = run.model.state_dict()
    assert all(torch.equal(final[k], rec.weights[12][k]) for k in final)  # the best episode's weights
    assert [s[1:3] for s in rec.seen if s[0] in (0, 3, 6, 9, 12)] == [(0, 3), (3, 3), (6, 3), (9, 3), (12, 3)]
    state = run.methods[0].state_dict()
    assert state["best_episode"] == 4 and state["best"] == 3.9 and state["mode"] == "deep"


def test_threshold_small_gain_switches_to_deep_without_rollback_and_patience_waits(make_run, tmp_path):
    options = {"episode": "2 steps", "threshold": 0.05, "patience": 2}
    run, _, events = _sleep_run(make_run, tmp_path, options, [5.0, 4.99, 4.5, 4.6, 4.7])
    assert [e["sleep"] for e in events if e["event"] == "episode_end"] == ["light", "deep", "deep", "deep", "stop"]
    assert [e["event"] for e in events if e["event"] in POLICY_EVENTS] == [
        "snapshot", "reset_optimizer",
        "snapshot", "rebuild_model",                   # 4.99 is the best so far, but not better by 0.05
        "snapshot", "rebuild_model",
        "rollback", "rebuild_model",                   # first miss: patience 2 sleeps deep once more
        "rollback", "finish"]
    assert run.step == 10


def test_overrides_per_episode_and_max_episodes(make_run, tmp_path):
    options = {"episode": "3 steps", "policy": "light", "max_episodes": 3,
               "episodes": [{"at": 2, "length": "5 steps", "lr": "5e-3"}, {"at": "last", "weight_decay": 0.5}]}
    run, rec, events = _sleep_run(make_run, tmp_path, options, [], steps=40)
    assert run.step == 11 and run.finished_early
    by_step = {s[0]: s[1:] for s in rec.seen}
    assert by_step[0] == (0, 3, 1e-2, 0.1)           # episode 1: the recipe's lr and weight decay
    assert by_step[3] == (3, 5, 5e-3, 0.1)           # episode 2: longer, lower lr
    assert by_step[8] == (8, 3, 1e-2, 0.5)           # the last: back to the recipe's lr, its own decay
    assert [e["event"] for e in events if e["event"] in POLICY_EVENTS] == ["reset_optimizer", "reset_optimizer",
                                                                           "finish"]


def test_a_zero_weight_decay_episode_gives_the_decay_back_afterwards(make_run, tmp_path):
    options = {"episode": "2 steps", "policy": "light", "episodes": [{"at": 2, "weight_decay": 0}]}
    decay = []
    watch = Recorder()
    watch.on_step_start = lambda run: decay.append(max(g["weight_decay"] for g in run.optimizer.param_groups))
    run = make_run(methods=[*build_methods([{"sleep": options}]), watch], steps=6)
    train(run)
    assert decay == [0.1, 0.1, 0.0, 0.0, 0.1, 0.1]

def test_deep_policy_and_overrides_after_deep_sleeps(make_run, tmp_path):
    options = {"episode": "4 steps", "policy": "deep", "episodes": [{"at": "deep", "lr": 2e-3}]}
    run, rec, events = _sleep_run(make_run, tmp_path, options, [], steps=12)
    assert [s[3] for s in rec.seen] == [1e-2] * 4 + [2e-3] * 8
    assert [e["event"] for e in events if e["event"] in POLICY_EVENTS] == ["rebuild_model", "rebuild_model"]


@pytest.mark.parametrize("options, needle", [
    ({"threshold": -0.1}, "threshold is -0.1"),
    ({"policy": "nap"}, "paper, light, deep"),
    ({"patience": 0}, "patience"),
    ({"episode": "ten steps"}, "10k steps"),
    ({"episodes": [{"at": "last", "lr": 1e-3}]}, "needs max_episodes"),
    ({"episodes": [{"at": 0}]}, "numbered from 1"),
    ({"episodes": [{"at": 1, "lenght": "5 steps"}]}, "unknown key 'lenght'"),
])
def test_bad_options_are_one_line_errors(options, needle):
    with pytest.raises(UserError, match="method 'sleep'") as e:
        build_methods([{"sleep": options}])
    assert needle in str(e.value) and "\n" not in str(e.value)


def test_negative_threshold_from_the_cli(capsys, tiny_recipe, tmp_path):
    path = tiny_recipe(methods=[{"sleep": {"threshold": -0.5}}])
    assert main(["train", str(path), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "threshold" in err and "Traceback" not in err


# -- resume -------------------------------------------------------------------------------------------
# Scripted by step so the straight and the resumed run see the same losses (episodes of 3 steps).
LOSSES = {3: 5.0, 6: 5.5, 9: 4.0, 12: 3.9, 15: 4.2, 18: 3.95}


@pytest.fixture
def scripted_by_step(monkeypatch):
    monkeypatch.setattr(Run, "evaluate", lambda self: {"val_loss": LOSSES[self.step]})


def _stop_at(step):
    def on_step(run, record):
        if run.step == step:
            run.stop_requested = True
    return on_step


def test_resume_is_bitwise_with_sleeps_rollbacks_and_deep_sleeps_on_both_sides(tiny_recipe, tmp_path,
                                                                               scripted_by_step):
    # light (3), rollback + deep (6), deep (9) | resume at 10 | deep (12), rollback + deep (15),
    # rollback + stop at the cap (18).
    recipe = load_recipe(str(tiny_recipe(methods=[{"sleep": {"episode": "3 steps", "patience": 2}}])),
                         ["checkpoint.every=0", "train.duration=18"])
    straight = execute(recipe, tmp_path / "straight")
    execute(recipe, tmp_path / "resumed", on_step=_stop_at(10))
    resumed = execute(recipe, tmp_path / "resumed", resume=True)
    a = load_file(str(latest_checkpoint(tmp_path / "straight") / "model.safetensors"))
    b = load_file(str(latest_checkpoint(tmp_path / "resumed") / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert straight["val_loss"] == resumed["val_loss"] and resumed["steps"] == 18

    def kinds(run_dir):
        return [(e["step"], e["event"]) for e in _events(run_dir / "metrics.jsonl") if e["event"] in POLICY_EVENTS]
    assert kinds(tmp_path / "straight") == kinds(tmp_path / "resumed")
    done = {e for _, e in kinds(tmp_path / "resumed")}
    assert {"reset_optimizer", "rollback", "rebuild_model", "finish"} <= done
    before = {e for s, e in kinds(tmp_path / "resumed") if s < 10}
    assert {"reset_optimizer", "rollback", "rebuild_model"} <= before  # all three before the resume point too


def test_a_rollback_whose_snapshot_is_gone_is_one_line(capsys, tiny_recipe, tmp_path, scripted_by_step):
    import shutil
    path = tiny_recipe(methods=[{"sleep": {"episode": "3 steps"}}])
    execute(load_recipe(str(path)), tmp_path / "r", on_step=_stop_at(4))
    shutil.rmtree(tmp_path / "r" / "snapshots")
    assert main(["train", str(path), "--out", str(tmp_path / "r"), "--resume"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "snapshot" in err and "policy: light" in err, err
