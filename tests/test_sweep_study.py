"""Sweeps: a tiny real structure sweep end to end, resumption, failure handling, reuse, CLI errors."""

import json
import os
import socket
import subprocess
import sys

import pytest

pytest.importorskip("optuna")

import tinylm.sweep.study as study_module  # noqa: E402
from tinylm.cli.main import main  # noqa: E402
from tinylm.sweep import StructureSpace, run_study, structure_sweep  # noqa: E402
from tinylm.train.recipe import load_recipe  # noqa: E402

TINY = ["--target-heads", "8", "--band", "0.25", "--layers", "1:4", "--width", "32", "--head-dim", "8:16:8",
        "--budget", "2 steps", "--quiet"]
SPACE = StructureSpace(target_heads=8, band=0.25, layers=(1, 2, 3, 4), widths=(32,), head_dims=(8, 16))


@pytest.fixture
def executions(monkeypatch):
    """Count (and record) the runs the sweep trains, still training them for real."""
    calls = []
    real = study_module.execute

    def counting(recipe, out_dir, **kwargs):
        calls.append((out_dir.name, kwargs.get("resume")))
        return real(recipe, out_dir, **kwargs)
    monkeypatch.setattr(study_module, "execute", counting)
    return calls


def _fake_execute(monkeypatch, value=lambda recipe: 1.0, calls=None):
    """No training: a run directory with a config.yaml and a summary, for study logic alone."""
    def fake(recipe, out_dir, resume=False, **kwargs):
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "config.yaml").write_text("x: 1\n")
        if calls is not None:
            calls.append((out_dir.name, resume))
        return {"complete": True, "val_loss": value(recipe), "steps": 1, "parameters": 10, "flops": 1.0}
    monkeypatch.setattr(study_module, "execute", fake)


def test_tiny_sweep_ranks_plots_and_resumes_without_rerunning(tiny_recipe, tmp_path, executions, capsys):
    out = tmp_path / "sweep"
    argv = ["sweep", str(tiny_recipe()), "--out", str(out), *TINY]
    assert main(argv + ["--trials", "3"]) == 0
    ranking = json.loads((out / "ranking.json").read_text())
    losses = [t["val_loss"] for t in ranking["trials"]]
    assert ranking["complete"] == 3 and losses == sorted(losses)
    first = ranking["trials"][0]
    assert {"spec", "layers", "heads", "kv_heads", "width", "head_dim", "parameters", "flops"} <= set(first)
    assert first["steps"] == 2 and first["layers"] * first["heads"] == first["total_heads"]
    assert (out / "heads-vs-layers.png").read_bytes()[:4] == b"\x89PNG"
    assert len(list((out / "trials").iterdir())) == 3 and len(executions) == 3
    assert first["spec"] in capsys.readouterr().out  # the table of top trials

    assert main(argv + ["--trials", "3"]) == 0  # the same command again: nothing to do
    assert len(executions) == 3 and json.loads((out / "ranking.json").read_text())["trials"] == ranking["trials"]
    assert main(argv + ["--trials", "4"]) == 0  # one more trial, a new structure
    assert len(executions) == 4 and len(list((out / "trials").iterdir())) == 4
    specs = [t["spec"] for t in json.loads((out / "ranking.json").read_text())["trials"]]
    assert len(set(specs)) == 4


def test_an_interrupted_trial_continues_from_its_checkpoint(tiny_recipe, tmp_path, executions):
    base = load_recipe(str(tiny_recipe()), ["train.duration=2", "checkpoint.every=0"]).to_dict()

    def ctrl_c_at_step_1(run, record):  # what the first Ctrl-C does inside `execute`
        if run.step == 1:
            run.stop_requested = True
    first = structure_sweep(base, tmp_path / "s", SPACE, 2, on_step=ctrl_c_at_step_1)
    assert first.interrupted and not first.ranking
    (trial_dir,) = (tmp_path / "s" / "trials").iterdir()
    assert (trial_dir / "checkpoints" / "step-00000001").is_dir()

    second = structure_sweep(base, tmp_path / "s", SPACE, 2)
    assert not second.interrupted and [t["steps"] for t in second.ranking] == [2, 2]
    assert executions[1] == (trial_dir.name, True)  # the same directory, resumed
    assert len(list((tmp_path / "s" / "trials").iterdir())) == 2 and len(executions) == 3


def test_hyperparameter_space_reuses_the_machinery(tiny_recipe, tmp_path, monkeypatch):
    """The distillation sweep's shape: any space of --set overrides, TPE by default."""
    _fake_execute(monkeypatch, value=lambda r: abs(r.train.lr - 3e-3) + r.train.weight_decay)
    base = load_recipe(str(tiny_recipe())).to_dict()

    def space(trial):
        return [f"train.lr={trial.suggest_float('lr', 1e-4, 1e-2, log=True)}",
                f"train.weight_decay={trial.suggest_categorical('wd', [0.0, 0.1, 1.0])}"]
    result = run_study(base, tmp_path / "hp", space, 5, seed=1, label=lambda o: "hp")
    assert len(result.ranking) == 5 and result.ranking[0]["rank"] == 1
    assert set(result.ranking[0]["params"]) == {"lr", "wd"}
    assert result.ranking[0]["overrides"][0].startswith("train.lr=")
    assert sorted(p.name for p in (tmp_path / "hp" / "trials").iterdir())[0] == "0000-hp"


def test_a_failing_trial_is_recorded_and_not_retried(tiny_recipe, tmp_path, monkeypatch):
    base = load_recipe(str(tiny_recipe())).to_dict()
    calls = []
    _fake_execute(monkeypatch, value=lambda r: float("nan") if "L1-" in r.model["name"] else 2.0, calls=calls)
    result = structure_sweep(base, tmp_path / "s", SPACE, 3)
    assert len(result.failed) == 1 and "diverged" in result.failed[0]["error"] and len(result.ranking) == 2
    structure_sweep(base, tmp_path / "s", SPACE, 3)
    assert len(calls) == 3  # the diverged one counts as done


def test_a_worker_that_counted_before_another_created_its_trial_trains_nothing(tiny_recipe, tmp_path, monkeypatch):
    """Two workers can both count the study one short of its budget and both create a trial: the later one
    (by trial number) gives its slot up before training, and is neither ranked nor retried."""
    base = load_recipe(str(tiny_recipe())).to_dict()
    calls = []
    _fake_execute(monkeypatch, calls=calls)
    structure_sweep(base, tmp_path / "s", SPACE, 2)
    real_count, counts = study_module._count, []

    def stale_first(study):  # the first count ran before the other worker's last trial existed
        counts.append(1)
        return (1, 0) if len(counts) == 1 else real_count(study)
    monkeypatch.setattr(study_module, "_count", stale_first)
    result = structure_sweep(base, tmp_path / "s", SPACE, 2)
    assert len(calls) == 2 and result.executed == 0 and len(counts) == 2
    assert len(result.ranking) == 2 and result.failed == [] and result.running == 0
    assert len(list((tmp_path / "s" / "trials").iterdir())) == 2
    monkeypatch.setattr(study_module, "_count", real_count)
    structure_sweep(base, tmp_path / "s", SPACE, 2)  # the surplus trial is not an interrupted one to retry
    study = study_module.open_study(tmp_path / "s", None, "structures")
    assert len(calls) == 2 and study.get_trials(states=(study_module.TrialState.WAITING,)) == []


@pytest.mark.filterwarnings("ignore:Heartbeat of storage")  # the test plays a dead worker with study.ask
def test_a_trial_of_a_killed_process_is_retried_at_once(tiny_recipe, tmp_path, monkeypatch):
    base = load_recipe(str(tiny_recipe())).to_dict()
    calls = []
    _fake_execute(monkeypatch, calls=calls)
    structure_sweep(base, tmp_path / "s", SPACE, 1)
    study = study_module.open_study(tmp_path / "s", None, "structures")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    study.enqueue_trial({"candidate": 5})
    orphan = study.ask({"candidate": study_module.optuna.distributions.IntDistribution(0, 21)})
    assert orphan.params == {"candidate": 5}
    orphan.set_user_attr("worker", f"{socket.gethostname()}:{int(dead.stdout)}")
    orphan.set_user_attr("run_dir", "trials/0001-orphan")
    assert int(dead.stdout) != os.getpid()
    result = structure_sweep(base, tmp_path / "s", SPACE, 2)
    assert calls[-1] == ("0001-orphan", False) and len(result.ranking) == 2 and result.running == 0
    assert {"candidate": 5} in [r["params"] for r in result.ranking]


def test_cli_bad_input_is_one_line(one_line_error, tiny_recipe, tmp_path):
    recipe = str(tiny_recipe())
    out = ["--out", str(tmp_path / "s")]
    one_line_error(["sweep", recipe, *out, "--band", "0", "--layers", "7,9"], "--band", "--layers")
    one_line_error(["sweep", recipe, *out, "--layers", "48:4"], "--layers")
    one_line_error(["sweep", recipe, *out, "--budget", "two weeks"], "two weeks")
    one_line_error(["sweep", str(tiny_recipe("bad", train={"lerning_rate": 1})), *out], "train.lerning_rate")
    one_line_error(["sweep", str(tiny_recipe("nostore", data={"store": str(tmp_path / "nowhere")})), *out,
                             *TINY], "nowhere", "tinylm prepare")
    err = one_line_error(["sweep", recipe, *out, *TINY, "--storage", "postgresql://me:secret@127.0.0.1:1/db"],
                          "cannot open study storage", "postgresql://me:***@")
    assert "secret" not in err
    one_line_error(["sweep", recipe, *out, *TINY, "--storage", f"sqlite:///{tmp_path}/no/such/dir/s.db"],
                    "cannot open study storage")
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize("value", ["0", "0.5", "soon"])
def test_a_bad_heartbeat_setting_is_one_line(one_line_error, tiny_recipe, tmp_path, monkeypatch, value):
    monkeypatch.setenv("TINYLM_SWEEP_HEARTBEAT_S", value)
    one_line_error(["sweep", str(tiny_recipe()), "--out", str(tmp_path / "s"), *TINY],
                   f"TINYLM_SWEEP_HEARTBEAT_S={value!r}", "whole seconds")
    assert not (tmp_path / "s").exists()


def test_two_trials_choosing_at_once_take_different_structures():
    from tinylm.sweep.structure_search import OrderedSampler

    optuna = study_module.optuna
    study = optuna.create_study(sampler=OrderedSampler("candidate", [3, 1, 2]))
    one_of = {"candidate": optuna.distributions.IntDistribution(0, 3)}
    first = study.ask()  # another worker's trial: started, its structure not chosen yet
    second = study.ask(one_of)
    assert second.params == {"candidate": 1}  # leaves the first free value to the earlier trial
    assert first.suggest_int("candidate", 0, 3) == 3
    study.tell(first, 1.0)
    study.tell(second, 1.0)
    assert study.ask(one_of).params == {"candidate": 2}


def test_a_postgresql_url_without_its_driver_names_the_extra(monkeypatch):
    from tinylm.errors import UserError
    from tinylm.sweep.storage import open_storage_study

    for name in ("psycopg", "psycopg2"):
        monkeypatch.setitem(sys.modules, name, None)  # as if neither driver were installed
    with pytest.raises(UserError, match=r"driver is not installed .*pip install 'tinylm\[postgres\]'"):
        open_storage_study("postgresql://user:secret@127.0.0.1:1/db", "s")


def test_a_study_started_before_a_machine_key_existed_still_opens(tmp_path):
    """`train.parallel` joined the machine keys later: a study whose recipe fingerprint lacks it is the same study."""
    from tinylm.sweep.study import open_study, shared_recipe
    from tinylm.train.recipe import recipe_from_dict

    base = recipe_from_dict({"data": {"store": "s"}, "model": {"name": "L2-4-32x2"}}).to_dict()
    older = shared_recipe(base)
    del older["train"]["parallel"]
    open_study(tmp_path / "s", None, "study", fingerprint={"recipe": older})
    open_study(tmp_path / "s", None, "study", fingerprint={"recipe": shared_recipe({**base, "train": {
        **base["train"], "parallel": "fsdp", "threads": 2}})})  # this worker's machine keys are its own
