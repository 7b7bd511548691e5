"""The hyperparameter sweep: the space file, pruning, resumption, the best recipe, the stability check."""

import json

import pytest

pytest.importorskip("optuna")

import optuna  # noqa: E402

import tinylm.sweep.study as study_module  # noqa: E402
from tinylm.cli.main import main  # noqa: E402
from tinylm.errors import UserError  # noqa: E402
from tinylm.sweep.hparams import hyperband, hyperparameter_sweep  # noqa: E402
from tinylm.sweep.space import parse_space  # noqa: E402
from tinylm.sweep.stability import stability_report, stability_seeds  # noqa: E402
from tinylm.train.recipe import apply_overrides, load_recipe  # noqa: E402

SHORT = {"train": {"duration": "6 steps", "log_every": 1}, "eval": {"every": 2, "windows": 4, "batch_size": 4},
         "checkpoint": {"every": 0}}


@pytest.fixture
def base(tiny_recipe):
    return load_recipe(str(tiny_recipe(**SHORT, methods=["sleep"]))).to_dict()


@pytest.mark.parametrize("space, needles", [
    ({"train.lrr": {"low": 1e-4, "high": 1e-2}}, ["train.lrr", "did you mean `train.lr`"]),
    ({"trian.lr": [1e-3]}, ["trian.lr", "did you mean `train`"]),
    ({"model.dropuot": [0.1]}, ["did you mean `model.dropout`"]),
    ({"methods.sleep.treshold": [0.1]}, ["did you mean `methods.sleep.threshold`"]),
    ({"methods.forget.every": [1]}, ["the recipe's methods are ['sleep']"]),
    ({"train.betas.2": [0.99]}, ["index 0..1"]),
    ({"train.seed": [1, 2]}, ["is a seed", "--stability"]),
    ({"train.lr": {"low": "3e-3", "high": "1e-4"}}, ["low (3e-3) must be below high (1e-4)"]),
    ({"train.lr": {"low": 0, "high": 1e-2, "log": True}}, ["log scale needs low > 0"]),
    ({"train.lr": {"low": 1e-4, "high": 1e-2, "log": True, "step": 1e-4}}, ["log or step, not both"]),
    ({"train.lr": {"lo": 1e-4, "high": 1e-2}}, ["did you mean `low`"]),
    ({"train.lr": {"low": "fast", "high": 1e-2}}, ["low 'fast' is not a number"]),
    ({"train.lr": 1e-3}, ["list of choices", "--set"]),
    ({"train.batch_size": []}, ["empty list"]),
    ({"train.warmup": {"low": 0.5, "high": 10}}, ["whole number"]),
    ({"train.schedule": {"low": 0, "high": 1}}, ["list of choices"]),
    ({"train.schedule": ["linear", "cosin"]}, ["'cosin'", "linear, cosine, constant"]),
    ({"train.batch_size": [4, 0]}, ["train.batch_size", "at least 1"]),
    ({"methods.sleep.patience": [0, 1]}, ["patience"]),
    ({}, ["non-empty"]),
])
def test_the_space_file_is_checked_before_any_trial(base, space, needles):
    with pytest.raises(UserError) as e:
        parse_space(space, base, "space.yaml")
    assert "space.yaml" in str(e.value)
    for needle in needles:
        assert needle in str(e.value)


def test_distributions_follow_the_recipe_field_types(base):
    space = {"train.lr": {"low": "1e-4", "high": "3e-3", "log": True}, "train.warmup": {"low": 0, "high": 10,
             "step": 5}, "train.batch_size": [2, 4], "train.betas.1": {"low": 0.9, "high": 0.999},
             "methods.sleep.threshold": {"low": 0.0, "high": 0.1}, "model.dropout": {"low": 0.0, "high": 0.2}}
    params = {p.key: p for p in parse_space(space, base, "space.yaml")}
    assert {k: p.kind for k, p in params.items()} == {
        "train.lr": "float", "train.warmup": "int", "train.batch_size": "categorical", "train.betas.1": "float",
        "methods.sleep.threshold": "float", "model.dropout": "float"}
    assert params["train.lr"].log and params["train.lr"].low == 1e-4  # YAML's "1e-4" string is a number
    trial = optuna.create_study().ask()
    overrides = [p.override(p.suggest(trial)) for p in params.values()]
    data = apply_overrides(base, overrides)
    assert isinstance(data["train"]["warmup"], int) and data["train"]["warmup"] in (0, 5, 10)
    assert 0.9 <= data["train"]["betas"][1] <= 0.999 and data["train"]["betas"][0] == base["train"]["betas"][0]
    assert data["methods"] == [{"sleep": {"threshold": trial.params["methods.sleep.threshold"]}}]


def test_list_elements_can_be_overridden_and_out_of_range_is_a_user_error():
    data = apply_overrides({"train": {"betas": [0.9, 0.95]}, "methods": ["sleep"]},
                           ["train.betas.1=0.99", "methods.0.sleep.threshold=0.1"])
    assert data == {"train": {"betas": [0.9, 0.99]}, "methods": [{"sleep": {"threshold": 0.1}}]}
    with pytest.raises(UserError, match="index it with 0..1"):
        apply_overrides({"train": {"betas": [0.9, 0.95]}}, ["train.betas.2=0.9"])


class AlwaysPrune(optuna.pruners.BasePruner):
    def prune(self, study, trial) -> bool:
        return True


def test_pruning_ends_the_run_cleanly_and_marks_the_trial(base, tmp_path):
    params = parse_space({"train.lr": {"low": 1e-3, "high": 1e-2, "log": True}}, base)
    result = hyperparameter_sweep(base, tmp_path / "hp", params, 2, pruner=AlwaysPrune())
    assert not result.ranking and len(result.pruned) == 2
    assert all(r["state"] == "pruned" and r["pruned_at"] == 2 for r in result.pruned)
    ranking = json.loads((tmp_path / "hp" / "ranking.json").read_text())
    assert ranking["complete"] == 0 and len(ranking["pruned"]) == 2
    run_dir = tmp_path / "hp" / result.pruned[0]["run_dir"]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["complete"] and summary["steps"] == 2  # stopped at the first eval, not after 6 steps
    events = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert any(e.get("event") == "finish" and "pruned" in e["reason"] for e in events)
    assert result.pruned[0]["val_loss"] == pytest.approx(
        next(e["val_loss"] for e in events if e.get("step") == 2 and "val_loss" in e))
    again = hyperparameter_sweep(base, tmp_path / "hp", params, 2, pruner=AlwaysPrune())
    assert again.executed == 0  # a pruned trial is done, not retried

    full = hyperparameter_sweep(base, tmp_path / "np", params, 1, pruner=None)
    assert [r["steps"] for r in full.ranking] == [6] and not full.pruned


def test_hyperband_rungs_are_the_evals_and_need_them(tiny_recipe):
    pruner = hyperband(load_recipe(str(tiny_recipe(train={"duration": "100 steps"}, eval={"every": 10}))).to_dict())
    assert isinstance(pruner, optuna.pruners.HyperbandPruner)
    assert pruner._min_resource == 10 and pruner._max_resource == 100
    assert hyperband(load_recipe(str(tiny_recipe(eval={"every": 0}))).to_dict()) is None


def _fake_execute(monkeypatch, calls):
    def fake(recipe, out_dir, resume=False, **kwargs):
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "config.yaml").write_text("x: 1\n")
        calls.append(out_dir.name)
        return {"complete": True, "val_loss": abs(recipe.train.lr - 3e-3) * 100 + 1, "steps": 6}
    monkeypatch.setattr(study_module, "execute", fake)


def test_a_sweep_continues_its_study_and_writes_the_best_recipe(base, tmp_path, monkeypatch):
    calls = []
    _fake_execute(monkeypatch, calls)
    params = parse_space({"train.lr": {"low": 1e-4, "high": 1e-2, "log": True}, "train.batch_size": [2, 4]}, base)
    full = apply_overrides(base, ["train.duration=10k steps"])
    first = hyperparameter_sweep(base, tmp_path / "hp", params, 3, seed=1, recipe_for_best=full)
    second = hyperparameter_sweep(base, tmp_path / "hp", params, 5, seed=1, recipe_for_best=full)
    assert first.executed == 3 and second.executed == 2 and len(calls) == 5
    assert sorted(r["trial"] for r in second.ranking) == [0, 1, 2, 3, 4]  # one study, numbered on
    assert {r["trial"]: r["params"] for r in second.ranking if r["trial"] < 3} == \
        {r["trial"]: r["params"] for r in first.ranking}
    best = second.ranking[0]
    written = load_recipe(str(tmp_path / "hp" / "best-recipe.yaml"))
    assert written.train.lr == pytest.approx(best["params"]["train.lr"])
    assert written.train.batch_size == best["params"]["train.batch_size"]
    assert written.train.duration == "10k steps" and written.name.endswith("-best")
    other = parse_space({"train.lr": {"low": 1e-4, "high": 1e-1, "log": True}}, base)
    with pytest.raises(UserError, match="different space"):
        hyperparameter_sweep(base, tmp_path / "hp", other, 6, seed=1)


def test_workers_of_one_study_may_differ_in_threads_not_in_the_recipe(base, tmp_path, monkeypatch):
    calls = []
    _fake_execute(monkeypatch, calls)
    params = parse_space({"train.lr": {"low": 1e-4, "high": 1e-2, "log": True}}, base)
    hyperparameter_sweep(base, tmp_path / "hp", params, 1, seed=1)
    one_thread = apply_overrides(base, ["train.threads=1"])  # another worker on a shared machine
    assert hyperparameter_sweep(one_thread, tmp_path / "hp", params, 2, seed=1).executed == 1
    with pytest.raises(UserError, match="changed: train.warmup"):
        hyperparameter_sweep(apply_overrides(base, ["train.warmup=3"]), tmp_path / "hp", params, 3, seed=1)


def test_stability_says_whether_the_edge_survives():
    trial = {"trial": 7, "overrides": ["train.lr=0.002"], "val_loss": 3.90}
    clear = stability_report([4.00, 4.02, 4.01], [4.30, 4.28, 4.33], [1, 2, 3], trial)
    assert clear["survives"] and clear["verdict"] == "survives" and clear["difference"] == pytest.approx(-0.2933333)
    assert clear["welch"]["p_a_lower"] < 0.05 and clear["difference_in_pooled_std"] < -5
    assert clear["sweep_optimism"] == pytest.approx(0.11) and "survives new seeds" in clear["summary"]
    assert {"best", "base", "seeds", "pooled_std", "welch", "summary"} <= set(clear)
    assert clear["best"]["mean"] == pytest.approx(4.01) and clear["base"]["n"] == 3
    noisy = stability_report([4.00, 4.30, 4.10], [4.20, 4.05, 4.25], [1, 2, 3], trial)
    assert not noisy["survives"] and noisy["verdict"] == "not significant"
    worse = stability_report([4.40, 4.42], [4.30, 4.31], [1, 2], trial)
    assert worse["verdict"] == "does not survive" and "lucky" in worse["summary"]


def test_stability_seeds_are_new(tiny_recipe):
    recipe = load_recipe(str(tiny_recipe(train={"seed": 1}, data={"seed": 3}))).to_dict()
    assert stability_seeds(recipe, 3) == [0, 2, 4]
    with pytest.raises(UserError, match="at least 2"):
        stability_seeds(recipe, 1)


def test_cli_sweep_with_stability_end_to_end(tiny_recipe, tmp_path, capsys):
    space = tmp_path / "space.yaml"
    space.write_text("train.lr: {low: 1e-3, high: 1e-2, log: true}\n")
    out = tmp_path / "hp"
    argv = ["sweep", str(tiny_recipe(**SHORT)), "--space", str(space), "--out", str(out), "--trials", "2",
            "--budget", "4 steps", "--pruner", "none", "--stability", "2", "--quiet"]
    assert main(argv) == 0
    report = json.loads((out / "stability.json").read_text())
    assert report["seeds"] == [1, 2]  # the sweep trained with seed 0
    best = report["best"]
    assert best["trial"] == json.loads((out / "ranking.json").read_text())["trials"][0]["trial"]
    assert best["n"] == 2 and report["base"]["n"] == 2 and report["verdict"] in (
        "survives", "not significant", "does not survive")
    for group in (best["runs"], report["base"]["runs"]):
        summary = json.loads((out / group / "seeds-summary.json").read_text())
        assert summary["seeds"] == [1, 2] and summary["val_loss"]["values"] == \
            (best if group == best["runs"] else report["base"])["values"]
        assert [json.loads((out / group / f"seed{s}" / "summary.json").read_text())["steps"] for s in (1, 2)] == [4, 4]
    assert report["summary"] in capsys.readouterr().out


def test_cli_mistakes_are_one_line(one_line_error, tiny_recipe, tmp_path):
    recipe, space = str(tiny_recipe()), tmp_path / "space.yaml"
    space.write_text("train.lrr: {low: 1e-4, high: 1e-2}\n")
    out = ["--out", str(tmp_path / "hp")]
    one_line_error(["sweep", recipe, "--space", str(space), *out], "train.lrr", "did you mean `train.lr`")
    one_line_error(["sweep", recipe, "--space", str(tmp_path / "none.yaml"), *out], "none.yaml")
    one_line_error(["sweep", recipe, "--space", str(space), "--layers", "2:4", *out], "--layers", "structure")
    one_line_error(["sweep", recipe, "--stability", "3", *out], "--stability", "--space")
    space.write_text("train.lr: {low: 1e-4, high: 1e-2}\n")
    one_line_error(["sweep", recipe, "--space", str(space), "--stability", "1", *out], "--stability 1", "at least 2")
    assert not (tmp_path / "hp" / "trials").exists()
