"""Seeds: `tinylm train --seeds` runs, their summary and statistics, resumption, `tinylm seeds`, errors."""

import json
import math
import statistics

import pytest
import torch
import yaml

import tinylm.runs.seeds as seeds_module
from tinylm.cli.main import main
from tinylm.runs.seeds import parse_seeds, train_seeds
from tinylm.runs.stats import betainc, describe, welch
from tinylm.train.build import build_run
from tinylm.train.recipe import load_recipe, recipe_from_dict

SHORT = {"train": {"duration": "4 steps", "log_every": 1}, "eval": {"every": 2, "windows": 4, "batch_size": 4},
         "checkpoint": {"every": 2}}


def _short(tiny_recipe, name="tiny", **sections):
    merged = {k: {**v, **sections.pop(k, {})} for k, v in SHORT.items()}
    return tiny_recipe(name, **merged, **sections)


def _initial(run_dir):
    """The model a seed's config starts from, and its first training batch."""
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    run = build_run(recipe_from_dict(config))
    return torch.cat([p.detach().flatten() for p in run.model.parameters()]), run.batches.next_batch()["input_ids"]


def test_each_seed_has_its_own_init_and_data_order_and_the_summary_is_their_statistics(tiny_recipe, tmp_path,
                                                                                         capsys):
    out = tmp_path / "s"
    assert main(["train", str(_short(tiny_recipe)), "--out", str(out), "--seeds", "3", "--quiet"]) == 0
    printed = capsys.readouterr().out
    dirs = [out / f"seed{n}" for n in range(3)]
    configs = [yaml.safe_load((d / "config.yaml").read_text()) for d in dirs]
    assert [(c["train"]["seed"], c["data"]["seed"]) for c in configs] == [(0, 0), (1, 1), (2, 2)]
    assert len({c["eval"]["seed"] for c in configs}) == 1  # the same validation windows for all
    starts = [_initial(d) for d in dirs]
    for i in range(3):
        for j in range(i):
            assert not torch.equal(starts[i][0], starts[j][0])  # initial weights
            assert not torch.equal(starts[i][1], starts[j][1])  # data order

    summary = json.loads((out / "seeds-summary.json").read_text())
    finals = [json.loads((d / "summary.json").read_text())["val_loss"] for d in dirs]
    bests = [min(r["val_loss"] for r in map(json.loads, (d / "metrics.jsonl").read_text().splitlines())
                 if "val_loss" in r) for d in dirs]
    assert summary["complete"] and summary["seeds"] == [0, 1, 2] and summary["varied"] == ["train.seed", "data.seed"]
    assert [r["val_loss"] for r in summary["runs"]] == finals and len(set(finals)) == 3
    assert summary["val_loss"]["mean"] == pytest.approx(statistics.fmean(finals), abs=1e-12)
    assert summary["val_loss"]["std"] == pytest.approx(statistics.stdev(finals), abs=1e-12)  # sample std
    assert summary["best_val_loss"]["mean"] == pytest.approx(statistics.fmean(bests), abs=1e-12)
    assert summary["best_val_loss"]["std"] == pytest.approx(statistics.stdev(bests), abs=1e-12)
    assert f"{summary['val_loss']['mean']:.4f} ± {summary['val_loss']['std']:.4f}" in printed


def test_a_pinned_seed_stays_and_only_the_other_varies(tiny_recipe, tmp_path):
    out = tmp_path / "s"
    assert main(["train", str(_short(tiny_recipe)), "--out", str(out), "--seeds", "4,9", "--set", "data.seed=7",
                 "--quiet"]) == 0
    configs = [yaml.safe_load((out / f"seed{n}" / "config.yaml").read_text()) for n in (4, 9)]
    assert [(c["train"]["seed"], c["data"]["seed"]) for c in configs] == [(4, 7), (9, 7)]
    (w4, b4), (w9, b9) = _initial(out / "seed4"), _initial(out / "seed9")
    assert torch.equal(b4, b9) and not torch.equal(w4, w9)
    assert json.loads((out / "seeds-summary.json").read_text())["pinned"] == ["data.seed"]


def test_a_finished_seed_is_skipped_and_an_interrupted_one_resumes(tiny_recipe, tmp_path, monkeypatch):
    base = load_recipe(str(_short(tiny_recipe))).to_dict()
    calls = []
    real = seeds_module.execute

    def counting(recipe, out_dir, **kwargs):
        calls.append((out_dir.name, kwargs["resume"]))
        return real(recipe, out_dir, **kwargs)
    monkeypatch.setattr(seeds_module, "execute", counting)

    def ctrl_c_in_seed_1(run, record):
        if run.recipe.train.seed == 1 and run.step == 2:
            run.stop_requested = True
    first = train_seeds(base, tmp_path / "s", [0, 1, 2], on_step=ctrl_c_in_seed_1)
    assert first.interrupted and [r["seed"] for r in first.rows] == [0, 1]
    assert not json.loads((tmp_path / "s" / "seeds-summary.json").read_text())["complete"]

    states = []
    second = train_seeds(base, tmp_path / "s", [0, 1, 2], on_seed=lambda s, d, state: states.append(state))
    assert states == ["done", "resume", "new"] and second.trained == [1, 2] and not second.interrupted
    assert calls == [("seed0", False), ("seed1", False), ("seed1", True), ("seed2", False)]
    assert [r["steps"] for r in second.rows] == [4, 4, 4] and second.summary["val_loss"]["n"] == 3

    third = train_seeds(base, tmp_path / "s", [0, 1, 2])
    assert third.trained == [] and len(calls) == 4  # nothing left to train


def test_a_seed_run_of_another_recipe_is_not_mixed_in(one_line_error, tiny_recipe, tmp_path):
    path, out = str(_short(tiny_recipe)), str(tmp_path / "s")
    assert main(["train", path, "--out", out, "--seeds", "1", "--quiet"]) == 0
    one_line_error(["train", path, "--out", out, "--seeds", "1", "--set", "train.lr=1e-2"],
                   "seed0", "train.lr", "--force")


@pytest.mark.parametrize("text, needle", [("0", "at least one seed"), ("a,b", "not a number"),
                                          ("-1,2", "non-negative"), ("3,3", "repeated"), (",", "not a number")])
def test_bad_seeds_are_one_line(one_line_error, tiny_recipe, text, needle):
    one_line_error(["train", str(tiny_recipe()), f"--seeds={text}"], "--seeds", needle)


def test_seed_counts_and_lists():
    assert parse_seeds("5") == [0, 1, 2, 3, 4] and parse_seeds("3,7,11") == [3, 7, 11] and parse_seeds("1") == [0]


def test_spread_of_groups_with_plot_and_welch(tiny_recipe, tmp_path, capsys, one_line_error):
    a, b = tmp_path / "a", tmp_path / "b"
    assert main(["train", str(_short(tiny_recipe)), "--out", str(a), "--seeds", "2", "--quiet"]) == 0
    assert main(["train", str(_short(tiny_recipe, "hot", train={"lr": 3e-2})), "--out", str(b), "--seeds", "2",
                 "--quiet"]) == 0
    capsys.readouterr()
    assert main(["seeds", str(a), str(b), "--plot", str(tmp_path / "spread.png"), "--json"]) == 0
    groups = json.loads(capsys.readouterr().out)["groups"]
    values = [[json.loads((g / f"seed{n}" / "summary.json").read_text())["val_loss"] for n in (0, 1)] for g in (a, b)]
    assert [g["values"] for g in groups] == values
    difference = statistics.fmean(values[1]) - statistics.fmean(values[0])
    assert groups[1]["vs_first"]["difference"] == pytest.approx(difference)
    assert groups[1]["vs_first"]["welch"]["t"] == pytest.approx(welch(values[1], values[0])["t"])
    assert (tmp_path / "spread.png").read_bytes()[:4] == b"\x89PNG"
    assert main(["seeds", str(a), str(b)]) == 0
    assert "Welch t" in capsys.readouterr().out
    one_line_error(["seeds", str(a), "--metric", "blimp"], "blimp", "tinylm eval")
    one_line_error(["seeds", str(tmp_path / "nowhere")], "nowhere")


def test_welch_and_the_t_tail_match_reference_values():
    # scipy.stats.ttest_ind(a, b, equal_var=False): t = -3.3263367, df = 4.7339901, p = 0.0226538
    a, b = [4.1, 4.3, 4.2, 4.25], [4.4, 4.35, 4.5]
    w = welch(a, b)
    assert w["t"] == pytest.approx(-3.3263367431804, rel=1e-9)
    assert w["df"] == pytest.approx(4.73399014778325, rel=1e-9)
    assert w["p_two_sided"] == pytest.approx(0.022653842978041554, rel=1e-7)
    assert w["p_a_lower"] == pytest.approx(0.011326921489020777, rel=1e-7)
    assert betainc(2.5, 0.5, 0.9) == pytest.approx(0.48958974456442755, rel=1e-10)
    assert welch([1.0], [2.0, 3.0]) is None
    d = describe([1.0, 2.0, 4.0, None, math.nan])
    assert d["n"] == 3 and d["std"] == pytest.approx(statistics.stdev([1.0, 2.0, 4.0]))


def test_validation_split_does_not_follow_the_data_order_seed(tmp_path, monkeypatch, book):
    """`sources:` recipes of different data seeds share one prepared store, so one validation set."""
    from tinylm.train.build import open_store
    from tinylm.train.distributed import World

    monkeypatch.setenv("TINYLM_CACHE", str(tmp_path / "cache"))
    src = tmp_path / "peter.txt"
    src.write_text(book("AliceInWonderland")[:20_000])
    recipe = {"data": {"sources": [str(src)], "tokenizer": "gpt2"}, "model": {"name": "L2-4-32x2"}}
    stores = {open_store(recipe_from_dict({**recipe, "data": {**recipe["data"], "seed": s}}), World()).path
              for s in (0, 3)}
    assert len(stores) == 1
    other = open_store(recipe_from_dict({**recipe, "data": {**recipe["data"], "split_seed": 1}}), World()).path
    assert other not in stores
    # `tinylm eval` knows the store a run trained on (its val loss is then the run's): the same key
    from tinylm.eval.report import is_run_store
    (store,) = stores
    assert is_run_store(recipe_from_dict({**recipe, "data": {**recipe["data"], "seed": 3}}), store)
    assert not is_run_store(recipe_from_dict(recipe), other)


def test_a_run_from_before_a_new_recipe_key_still_resumes(tiny_recipe, tmp_path):
    from tinylm.runs.execute import execute
    from tinylm.train.build import check_resume

    recipe = load_recipe(str(_short(tiny_recipe)))
    execute(recipe, tmp_path / "r")
    config = yaml.safe_load((tmp_path / "r" / "config.yaml").read_text())
    del config["data"]["split_seed"]  # as written before the key existed
    (tmp_path / "r" / "config.yaml").write_text(yaml.safe_dump(config))
    check_resume(tmp_path / "r", recipe, force=False)
