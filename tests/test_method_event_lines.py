"""What a curriculum does shows on the console as it happens: one line per method event (a sleep, a
rollback, a forget reset, a grow stage) above the progress bar, written from the event records the
methods really log; `execute(on_event=...)` hands each record over as it is logged."""

import pytest

from tinylm.cli.progress import EventLines, TrainingProgress
from tinylm.methods import build_methods
from tinylm.train.loop import train
from tinylm.rundir.metrics import read_metrics


def _lines(make_run, tmp_path, methods, steps, evaluate=None, **train_section):
    """Train an in-memory run with `methods` and turn each event it logged into its console line."""
    run = make_run(methods=build_methods(methods), steps=steps, out_dir=tmp_path / "run", **train_section)
    if evaluate is not None:
        losses = iter(evaluate)
        run.evaluate = lambda: {"val_loss": next(losses)}  # scripted, so each branch of sleep's policy is taken
    train(run)
    run.metrics.close()
    events = EventLines()
    lines = [events.line(r, steps) for r in read_metrics(tmp_path / "run" / "metrics.jsonl") if "event" in r]
    return [line for line in lines if line is not None]


def test_sleep_says_each_sleep_with_the_loss_that_decided_it_and_each_rollback(make_run, tmp_path):
    lines = _lines(make_run, tmp_path, [{"sleep": {"episode": "3 steps"}}], 40, [5.0, 4.0, 4.5, 3.9, 3.95])
    assert lines == [
        "step 3: light sleep after episode 1 (val 5.0000, best so far)",
        "step 6: light sleep after episode 2 (val 5.0000 → 4.0000, best so far)",
        "step 9: weights rolled back to snapshot sleep-best",
        "step 9: deep sleep after episode 3 (val 4.0000 → 4.5000, best 4.0000)",
        "step 12: deep sleep after episode 4 (val 4.5000 → 3.9000, best so far)",
        "step 15: weights rolled back to snapshot sleep-best",
        "step 15: episode 5 did not improve on the best (val 3.9000 → 3.9500, best 3.9000): no more sleeps",
        "step 15: the run ends here: sleep: a deep sleep no longer improves (best: episode 4, val loss 3.9000)"]


def test_sleep_without_validation_and_per_episode_learning_rates(make_run, tmp_path):
    options = {"episode": "4 steps", "policy": "light", "episodes": [{"at": 2, "lr": 5e-3}]}
    lines = _lines(make_run, tmp_path, [{"sleep": options}], 8)
    assert lines == ["step 4: light sleep after episode 1",
                     "step 4: learning rate 0.005, weight decay 0.1 from here",
                     "step 8: episode 2 ends with the run"]


def test_forget_says_which_tensors_it_drew_afresh(make_run, tmp_path):
    lines = _lines(make_run, tmp_path, [{"forget": {"every": 4}}], 10)
    assert len(lines) == 2 and lines[0].startswith("step 4: forgot ") and lines[1].startswith("step 8: forgot ")
    assert "embed" in lines[0] and lines[0].endswith(": drawn afresh with the model's init")


def test_grow_says_each_stage_and_phase(make_run, tmp_path):
    methods = [{"grow": {"stages": 2, "incremental": "8 steps"}}]
    assert _lines(make_run, tmp_path, methods, 12, model="L4-2-16x2") == [
        "step 0: grow stage 1: 2 new layers train until step 2",
        "step 2: grow stage 1, phase 2: all 2 layers train until step 4",
        "step 4: grow stage 2: 4 layers; the 2 new ones train, the 2 older ones are frozen until step 6",
        "step 6: grow stage 2, phase 2: all 4 layers train until step 8",
        "step 8: grown: all 4 layers train on until step 12 (continual phase)"]


def test_an_event_kind_without_a_formatter_still_gets_a_line_and_plumbing_stays_silent():
    events = EventLines()
    assert events.line({"event": "swap_teacher", "step": 7, "tokens": 10, "flops": 1.0, "teacher": "t2",
                        "weight": 0.25}) == "step 7: swap_teacher (teacher t2, weight 0.25)"
    for kind in ("reset_optimizer", "restart_schedule", "snapshot", "set_trainable", "end"):
        assert events.line({"event": kind, "step": 1}) is None


def _fake_run(step=0, main=True):
    from types import SimpleNamespace

    choice = SimpleNamespace(warning=None, line=lambda: "precision: fp32 (asked for)")
    return SimpleNamespace(world=SimpleNamespace(is_main=main), total_steps=20, step=step, precision_choice=choice)


@pytest.mark.parametrize("tty", [False, True])
def test_progress_writes_event_lines_after_its_first_line_and_above_the_bar(tty, capsys):
    run = _fake_run()
    progress = TrainingProgress(announce=True)
    progress.tty = tty
    progress.event(run, {"event": "grow_phase", "step": 0, "stage": 1, "phase": "phase1", "layers": 2,
                         "new": [0, 2], "until": 5})  # logged while the methods start: before the bar
    progress.start(run)
    run.step = 5
    progress.event(run, {"event": "rollback", "step": 5, "tag": "sleep-best"})
    progress.close()
    err = [line.strip() for line in capsys.readouterr().err.replace("\r", "\n").splitlines() if line.strip()]
    told = [line for line in err if line.startswith(("precision", "step "))]
    assert told == ["precision: fp32 (asked for)", "step 0: grow stage 1: 2 new layers train until step 5",
                    "step 5: weights rolled back to snapshot sleep-best"]


def test_quiet_progress_and_other_ranks_print_no_event_lines(capsys):
    for progress, run in ((TrainingProgress(enabled=False), _fake_run()), (TrainingProgress(), _fake_run(main=False))):
        progress.event(run, {"event": "rollback", "step": 0, "tag": "sleep-best"})
        progress.start(run)
        progress.event(run, {"event": "rollback", "step": 3, "tag": "sleep-best"})
        progress.close()
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("quiet", [False, True])
def test_execute_hands_events_to_the_progress_which_prints_them_unless_quiet(quiet, tiny_recipe, tmp_path, capsys):
    from tinylm.runs.execute import execute
    from tinylm.train.recipe import load_recipe

    methods = [{"sleep": {"episode": "10 steps", "policy": "light"}}, {"forget": {"every": 15}}]
    recipe = load_recipe(str(tiny_recipe(methods=methods)), ["train.duration=30"])
    progress = TrainingProgress(enabled=not quiet)
    try:
        execute(recipe, tmp_path / "run", on_start=progress.start, on_step=progress.step, on_event=progress.event)
    finally:
        progress.close()
    err = capsys.readouterr().err.splitlines()
    told = [line for line in err if line.startswith("step ") and " loss " not in line]
    expected = ["step 10: light sleep after episode 1", "step 15: forgot embed_tokens.weight: drawn afresh with the "
                "model's init", "step 20: light sleep after episode 2", "step 30: episode 3 ends with the run"]
    assert told == ([] if quiet else expected), err


@pytest.mark.parametrize("seeds", [None, "2"])
def test_tinylm_train_prints_the_event_lines_alone_and_with_seeds(seeds, tiny_recipe, tmp_path, capsys):
    """The command a user runs, not only execute: both of train's paths hand the events to the console."""
    from tinylm.cli.main import main

    recipe = tiny_recipe(methods=[{"sleep": {"episode": "10 steps", "policy": "light"}}])
    argv = ["train", str(recipe), "--out", str(tmp_path / "run"), "--set", "train.duration=20"]
    assert main(argv + (["--seeds", seeds] if seeds else [])) == 0
    err = capsys.readouterr().err.splitlines()
    told = [line for line in err if line.startswith("step ") and " loss " not in line]
    once = ["step 10: light sleep after episode 1", "step 20: episode 2 ends with the run"]
    assert told == once * (2 if seeds else 1), err  # `--seeds 2`: seeds 0 and 1, each its lines
