"""What a new user trips over in the first hour (issue 22, items 1-5): resuming with nothing but the run
directory, a shortened run's schedule, a config.yaml that says what ran, wall time over sessions, and
torch's thread count per run."""

import contextlib
import io
import json
import os
import shlex

import pytest
import torch
import yaml

import tinylm.runs.execute as execute_module
from tinylm.cli.main import main
from tinylm.runs.execute import execute
from tinylm.rundir.checkpoints import latest_checkpoint
from tinylm.rundir.metrics import read_metrics
from tinylm.train.recipe import load_recipe


def available_cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def run_cli(argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


def stop_at(step):
    def on_step(run, record):
        if run.step == step:
            run.stop_requested = True
    return on_step


# ------------------------------------------------------------------ 1. the resume hint and --resume alone
def test_the_printed_hint_resumes_a_run_started_with_overrides(tiny_recipe, tmp_path, monkeypatch):
    real = execute_module.execute

    def interrupted(recipe, out, **kwargs):  # as if Ctrl-C came at step 10
        return real(recipe, out, **{**kwargs, "on_step": stop_at(10)})

    monkeypatch.setattr(execute_module, "execute", interrupted)
    out = tmp_path / "my run"  # a space: the hint must quote it
    code, stdout, _ = run_cli(["train", str(tiny_recipe()), "--out", str(out), "--quiet", "--set", "train.duration=30",
                               "--set", "train.lr=0.01", "--set", "eval.every=0"])
    assert code == 130
    hint = stdout.split("continue with: ", 1)[1].strip()
    assert hint == f"tinylm train --out {shlex.quote(str(out))} --resume auto"
    monkeypatch.setattr(execute_module, "execute", real)

    code, stdout, err = run_cli(shlex.split(hint)[1:] + ["--quiet"])
    assert code == 0, err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["complete"] and summary["steps"] == 30
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert config["train"]["lr"] == 0.01 and config["eval"]["every"] == 0


def test_resume_without_a_recipe_compares_its_overrides_with_the_run(tiny_recipe, tmp_path):
    out = tmp_path / "run"
    assert run_cli(["train", str(tiny_recipe()), "--out", str(out), "--quiet", "--set", "train.duration=20"])[0] == 0
    code, _, err = run_cli(["train", "--out", str(out), "--resume", "--quiet", "--set", "train.duration=30"])
    assert code == 2 and "train.duration" in err and "--force" in err
    code, _, err = run_cli(["train", "--out", str(out), "--resume", "--quiet", "--set", "train.duration=30", "--force"])
    assert code == 0, err
    assert json.loads((out / "summary.json").read_text())["steps"] == 30


@pytest.mark.parametrize("argv, needle", [(["train"], "--resume"),
                                          (["train", "--resume"], "--out DIR"),
                                          (["train", "--out", "{tmp}/nothing", "--resume"], "no config.yaml")])
def test_resume_without_a_recipe_says_what_is_missing(one_line_error, tmp_path, argv, needle):
    one_line_error([a.replace("{tmp}", str(tmp_path)) for a in argv], needle)
    assert not (tmp_path / "nothing").exists()


# ------------------------------------------------------------------ 2. --force with a new length
def lrs(out):
    return {r["step"]: r["lr"] for r in read_metrics(out / "metrics.jsonl") if "lr" in r and "event" not in r}


@pytest.mark.parametrize("new_total", [20, 60])
def test_a_forced_new_duration_relays_the_schedule(tiny_recipe, tmp_path, new_total):
    path = tiny_recipe(train={"log_every": 1}, eval={"every": 0}, checkpoint={"every": 0})
    out = tmp_path / "run"
    execute(load_recipe(str(path), ["train.duration=40"]), out, on_step=stop_at(10))
    summary = execute(load_recipe(str(path), [f"train.duration={new_total}"]), out, resume=True, force=True)
    assert summary["complete"] and summary["steps"] == new_total
    lr = lrs(out)
    peak = 3e-3
    for step in range(11, new_total + 1):  # linear to zero over the *new* length (lr logged for step - 1)
        assert lr[step] == pytest.approx(peak * (1 - (step - 1) / new_total)), step
    assert lr[10] == pytest.approx(peak * (1 - 9 / 40))  # before the change: the old length
    event = [r for r in read_metrics(out / "metrics.jsonl") if r.get("event") == "schedule_length"]
    assert [(e["old_total_steps"], e["total_steps"], e["step"]) for e in event] == [(40, new_total, 10)]


def test_a_resume_of_the_same_length_leaves_the_schedule(tiny_recipe, tmp_path):
    path = tiny_recipe(train={"log_every": 1}, eval={"every": 0}, checkpoint={"every": 0})
    out = tmp_path / "run"
    recipe = load_recipe(str(path), ["train.duration=20"])
    execute(recipe, out, on_step=stop_at(5))
    execute(recipe, out, resume=True)
    assert not [r for r in read_metrics(out / "metrics.jsonl") if r.get("event") == "schedule_length"]
    assert lrs(out)[20] == pytest.approx(3e-3 * (1 - 19 / 20))


def test_a_cycle_a_method_started_stays_the_methods(make_run):
    from tinylm.train.build import follow_new_length

    run = make_run(steps=20)
    run.restart_schedule(5)  # as sleep or forget begin an episode
    follow_new_length(run, 40)
    assert (run.schedule.cycle_start, run.schedule.cycle_length) == (0, 5)
    run = make_run(steps=20)
    run.schedule.restart(0, 40)  # the run-long cycle of the old length, as a checkpoint restores it
    follow_new_length(run, 40)
    assert (run.schedule.cycle_start, run.schedule.cycle_length) == (0, 20)


# ------------------------------------------------------------------ 3. config.yaml says what ran
@pytest.fixture(scope="module")
def bpe_store(tmp_path_factory, book):
    """A store with a trained BPE tokenizer, so `data.tokenizer`'s default (gpt2) is not what it holds."""
    from tinylm.data import prepare_store

    src = tmp_path_factory.mktemp("corpus") / "alice.txt"
    src.write_text(book("AliceInWonderland")[:40_000])
    out = tmp_path_factory.mktemp("stores") / "alice-bpe"
    prepare_store([str(src)], "bpe:400", out, val_fraction=0.2, seed=3, docs="paragraph")
    return out


def test_config_yaml_records_the_store_tokenizer_not_the_default(tiny_recipe, tmp_path, bpe_store, monkeypatch):
    monkeypatch.chdir(bpe_store.parent)
    path = tiny_recipe(data={"store": bpe_store.name}, train={"duration": "10 steps"}, eval={"every": 0})
    out = tmp_path / "run"
    execute(load_recipe(str(path)), out)
    data = yaml.safe_load((out / "config.yaml").read_text())["data"]
    assert data["tokenizer"] == "bpe:400"
    assert (data["docs"], data["val_fraction"], data["split_seed"]) == ("paragraph", 0.2, 3)  # the store's
    assert data["store"] == str(bpe_store.resolve())  # resumable from any directory
    assert data["mlm_probability"] is None  # a decoder's windows mask nothing
    # The same recipe (unresolved, relative path) resumes without --force; so does a config.yaml written
    # before recipes were resolved (the default tokenizer in it), and so does no recipe at all.
    execute(load_recipe(str(path), ["train.duration=12"]), out, resume=True, force=True)
    execute(load_recipe(str(path), ["train.duration=12"]), out, resume=True)
    old = yaml.safe_load((out / "config.yaml").read_text())
    old["data"].update(tokenizer="gpt2", store=bpe_store.name, docs="paragraph", val_fraction=0.05, split_seed=0,
                       mlm_probability=0.15)
    (out / "config.yaml").write_text(yaml.safe_dump(old))
    execute(load_recipe(str(path), ["train.duration=12"]), out, resume=True)
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(["train", "--out", str(out), "--resume", "--quiet"])
    assert code == 0, err


# ------------------------------------------------------------------ 4. wall time over sessions
def test_wall_time_adds_up_over_sessions_and_a_rerun_keeps_it(tiny_recipe, tmp_path):
    import time

    recipe = load_recipe(str(tiny_recipe(train={"duration": "20 steps"}, eval={"every": 0})))
    out = tmp_path / "run"

    def slow_then_stop(run, record):
        if run.step == 5:
            time.sleep(0.6)
            run.stop_requested = True

    first = execute(recipe, out, on_step=slow_then_stop)
    assert first["wall_s"] == first["session_wall_s"] >= 0.6
    second = execute(recipe, out, resume=True)
    assert second["complete"]
    assert second["wall_s"] >= second["session_wall_s"] + 0.6  # the first session is carried in the checkpoint
    assert second["wall_s"] <= first["wall_s"] + second["session_wall_s"] + 0.05
    again = execute(recipe, out, resume=True)  # complete: nothing to train
    on_disk = json.loads((out / "summary.json").read_text())
    assert (again["wall_s"], again["session_wall_s"]) == (second["wall_s"], second["session_wall_s"])
    assert (on_disk["wall_s"], on_disk["session_wall_s"]) == (second["wall_s"], second["session_wall_s"])


# ------------------------------------------------------------------ 5. train.threads
@pytest.mark.skipif(available_cpus() < 2, reason="needs two CPUs to tell 2 threads from the tests' 1")
def test_a_run_uses_the_threads_its_recipe_gives_and_puts_them_back(tiny_recipe, tmp_path):
    before = torch.get_num_threads()
    assert before == 1  # tests/conftest.py
    seen = []
    recipe = load_recipe(str(tiny_recipe(train={"duration": "3 steps", "threads": 2}, eval={"every": 0})))
    execute(recipe, tmp_path / "two", on_start=lambda run: seen.append(torch.get_num_threads()))
    execute(load_recipe(str(tiny_recipe(train={"duration": "3 steps"}, eval={"every": 0}))), tmp_path / "default",
            on_start=lambda run: seen.append(torch.get_num_threads()))
    assert seen == [2, before]  # 0 (the default) leaves the process's count as it is
    assert torch.get_num_threads() == before
    assert yaml.safe_load((tmp_path / "two" / "config.yaml").read_text())["train"]["threads"] == 2


def test_threads_can_change_on_resume_without_force(tiny_recipe, tmp_path):
    path = tiny_recipe(train={"duration": "10 steps"}, eval={"every": 0})
    execute(load_recipe(str(path)), tmp_path / "run", on_step=stop_at(4))
    summary = execute(load_recipe(str(path), ["train.threads=1"]), tmp_path / "run", resume=True)
    assert summary["complete"]


def test_threads_negative_or_beyond_the_cpus_is_one_line(one_line_error, tiny_recipe, tmp_path):
    out = tmp_path / "r"
    one_line_error(["train", str(tiny_recipe()), "--out", str(out), "--set", "train.threads=-1"], "train.threads",
                   "-1", "0")
    too_many = available_cpus() + 1
    one_line_error(["train", str(tiny_recipe()), "--out", str(out), "--set", f"train.threads={too_many}"],
                   f"train.threads` is {too_many}", f"{available_cpus()} CPUs", f"at most {available_cpus()}")
    assert not out.exists()
    assert latest_checkpoint(out) is None


def test_the_experiments_divide_the_cores_among_their_processes():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "experiments" / "common.py"
    spec = importlib.util.spec_from_file_location("experiments_common", path)
    common = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(common)
    assert [common.threads_per_job(jobs, 16) for jobs in (1, 2, 3, 16, 40)] == [16, 8, 5, 1, 1]
