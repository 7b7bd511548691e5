"""Methods combine: sleep + forget and sleep + distill in one run resume bitwise, and a conflicting pair
is refused."""

import pytest

from tinylm.cli.main import main
from tinylm.rundir.metrics import read_metrics
from tinylm.train.recipe import load_recipe
from tinylm.train.run import Run

# Episodes of 4 steps: light (4), rollback + deep (8) | resume at 10 | deep (12), rollback + deep (16),
# improved at the cap (20). Resets every 3 steps run through all of it.
LOSSES = {4: 5.0, 8: 5.5, 12: 4.0, 16: 4.2, 20: 3.8}
EVENTS = {"reset_optimizer", "rollback", "rebuild_model", "reinit", "snapshot", "finish"}


@pytest.fixture
def scripted_by_step(monkeypatch):
    monkeypatch.setattr(Run, "evaluate", lambda self: {"val_loss": LOSSES[self.step]})


def test_sleep_and_forget_together_resume_bitwise(tiny_recipe, tmp_path, scripted_by_step, resumes_exactly):
    methods = [{"sleep": {"episode": "4 steps", "patience": 2}},
               {"forget": {"every": 3, "embedding_schedule": True}}]
    recipe = load_recipe(str(tiny_recipe(methods=methods)), ["checkpoint.every=0", "train.duration=20"])
    resumes_exactly(recipe, stop_at=10)

    def events(run_dir):
        return [(r["step"], r["event"]) for r in read_metrics(run_dir / "metrics.jsonl") if r.get("event") in EVENTS]
    assert events(tmp_path / "straight") == events(tmp_path / "resumed")
    for side in (lambda s: s < 10, lambda s: s > 10):
        kinds = {e for s, e in events(tmp_path / "resumed") if side(s)}
        assert {"reinit", "rollback", "rebuild_model"} <= kinds, kinds


def test_sleep_and_distill_together_resume_bitwise(tiny_recipe, tmp_path, scripted_by_step, resumes_exactly,
                                                  teacher_runs):
    # Deep sleeps rebuild the student, never the teachers; the top-k cache is written on both sides
    # of the resume point and the distillation logs continue their window across it.
    methods = [{"sleep": {"episode": "4 steps", "patience": 2}},
               {"distill": {"teachers": [str(t) for t in teacher_runs], "alpha": 0.5, "temperature": 2.0,
                            "cache": {"top_k": 16}}}]
    recipe = load_recipe(str(tiny_recipe(methods=methods)), ["checkpoint.every=0", "train.duration=20"])
    resumes_exactly(recipe, stop_at=10)

    def events(run_dir):
        return [(r["step"], r["event"]) for r in read_metrics(run_dir / "metrics.jsonl") if r.get("event") in EVENTS]

    def distill_logs(run_dir):
        return [(r["step"], r["distill_ce"], r["distill_kl"]) for r in read_metrics(run_dir / "metrics.jsonl")
                if "distill_kl" in r]
    assert events(tmp_path / "straight") == events(tmp_path / "resumed")
    assert {"rollback", "rebuild_model"} <= {e for s, e in events(tmp_path / "resumed") if s > 10}
    assert distill_logs(tmp_path / "straight") == distill_logs(tmp_path / "resumed")
    assert len(list((tmp_path / "resumed" / "distill-cache").glob("*/step-*.safetensors"))) == 20


def test_cyclic_forget_beside_sleep_is_refused(capsys, tiny_recipe, tmp_path):
    path = tiny_recipe(methods=[{"sleep": {"episode": "10 steps"}}, {"forget": {"every": 5, "cyclic": True}}])
    assert main(["train", str(path), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "cyclic" in err and "sleep" in err, err


def test_grow_and_distill_together_resume_bitwise(tiny_recipe, tmp_path, resumes_exactly, teacher_runs):
    # The student grows from 1 to 2 blocks (stage 2 starts at step 20) while distilling from two
    # full-depth teachers; the resume point (25) lies in stage 2's phase 1.
    methods = [{"grow": {"stages": 2}},
               {"distill": {"teachers": [str(t) for t in teacher_runs], "alpha": 0.5, "temperature": 1.0}}]
    recipe = load_recipe(str(tiny_recipe(methods=methods)), ["checkpoint.every=0", "train.duration=40"])
    resumes_exactly(recipe, stop_at=25)

    def logs(run_dir):
        return [(r["step"], r.get("event"), r.get("n_layers"), r.get("distill_kl"))
                for r in read_metrics(run_dir / "metrics.jsonl") if r.get("event") == "grow" or "distill_kl" in r]
    straight = logs(tmp_path / "straight")
    assert straight == logs(tmp_path / "resumed")
    assert [(s, n) for s, e, n, _ in straight if e == "grow"] == [(20, 2)]
