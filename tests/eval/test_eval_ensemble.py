"""`tinylm eval --ensemble`: a direct ensemble (mean logits, then softmax) on every task, the members
named in the report, and members of another tokenizer refused in one line."""

import json
import os
import shutil

import numpy as np
import pytest
import torch
import yaml

from tinylm.cli.main import main
from tinylm.package_files import package_file

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory, tiny_store):
    """Two tiny Llamas (seeds 1 and 2) trained 20 steps on the Alice store."""
    from tinylm.runs.execute import execute
    from tinylm.train.recipe import load_recipe

    root = tmp_path_factory.mktemp("ensemble-runs")
    runs = []
    for seed in (1, 2):
        recipe = {"name": f"m{seed}", "data": {"store": str(tiny_store), "seq_len": 32, "sampler": "windows"},
                  "model": {"name": "L2-4-32x2", "flavour": "llama"},
                  "train": {"duration": "20 steps", "batch_size": 4, "lr": 3e-3, "seed": seed},
                  "eval": {"every": 0, "windows": 8, "batch_size": 8}, "checkpoint": {"every": 0}}
        path = root / f"m{seed}.yaml"
        path.write_text(yaml.safe_dump(recipe))
        execute(load_recipe(str(path)), root / f"m{seed}")
        runs.append(root / f"m{seed}")
    return runs


@pytest.fixture(scope="module")
def small_blimp(tmp_path_factory, fixtures):
    d = tmp_path_factory.mktemp("blimp") / "blimp"
    d.mkdir()
    shutil.copyfile(fixtures / "blimp" / "anaphor_gender_agreement.jsonl", d / "anaphor_gender_agreement.jsonl")
    return d


def _eval(capsys, *argv):
    assert main(["eval", *map(str, argv), "--json", "--quiet"]) == 0
    return json.loads(capsys.readouterr().out)


def test_an_ensemble_of_a_model_with_itself_is_that_model(two_runs, small_blimp, fixtures, tiny_store, capsys):
    tasks = ["--blimp", small_blimp, "--hellaswag", fixtures / "hellaswag/val-first30.txt", "--limit", 10,
             "--val", tiny_store, "--out", two_runs[0].parent / "out-self"]
    alone = _eval(capsys, two_runs[0], *tasks)
    twice = _eval(capsys, "--ensemble", two_runs[0], two_runs[0], *tasks)
    for name in ("blimp", "hellaswag", "val"):
        for key in ("mean", "acc", "acc_norm", "val_loss"):
            if key in alone["results"][name]:
                assert twice["results"][name][key] == pytest.approx(alone["results"][name][key], abs=1e-6), (name, key)
    assert [m["run"] for m in twice["model"]["members"]] == [str(two_runs[0])] * 2


def test_ensemble_scores_the_mean_logits_on_every_task(two_runs, small_blimp, tiny_store, capsys, tmp_path):
    from tinylm.eval.ensemble import MeanLogits
    from tinylm.eval.hf_import import load_any
    from tinylm.eval.validation import validation_loss
    from tinylm.train.build import recipe_for_run

    out = _eval(capsys, "--ensemble", *two_runs, "--blimp", small_blimp, "--limit", 20, "--val", tiny_store,
                "--out", tmp_path / "ens")
    members = [load_any(r).model for r in two_runs]
    # validation: the loop's own windows with (z1 + z2) / 2 as the logits
    expected = validation_loss(MeanLogits(members), tiny_store, recipe=recipe_for_run(two_runs[0]))["val_loss"]
    singles = [_eval(capsys, r, "--val", tiny_store, "--out", tmp_path / r.name)["results"]["val"]["val_loss"]
               for r in two_runs]
    got = out["results"]["val"]["val_loss"]
    assert got == pytest.approx(expected, abs=1e-6) and all(abs(got - s) > 1e-4 for s in singles)
    x = torch.randint(50257, (2, 7))
    with torch.no_grad():
        torch.testing.assert_close(MeanLogits(members)(x), (members[0](x) + members[1](x)) / 2)
    # the report names the members and is written where --out says (an ensemble has no run of its own)
    model = out["model"]
    assert model["ensemble"] == "mean logits" and [m["run"] for m in model["members"]] == [str(r) for r in two_runs]
    saved = json.loads((tmp_path / "ens" / "blimp.json").read_text())
    assert len((tmp_path / "ens" / "blimp.items.jsonl").read_text().splitlines()) == 20  # per item, too
    assert saved["model"]["members"][1]["path"].startswith(str(two_runs[1]))
    assert not any((r / "eval").exists() and (r / "eval" / "blimp.json").exists() for r in two_runs)
    assert 0 <= out["results"]["blimp"]["mean"] <= 1 and out["results"]["blimp"]["pairs"] == 20
    assert main(["eval", "--ensemble", *map(str, two_runs), "--blimp", str(small_blimp), "--limit", "5",
                 "--quiet"]) == 0
    table = capsys.readouterr().out
    assert "ensemble of 2 (mean logits" in table and str(two_runs[1]) in table and "--out DIR" in table


def test_blimp_of_an_ensemble_uses_mean_logits(two_runs, small_blimp, capsys, tmp_path):
    from tinylm.eval.hf_import import load_any, special_ids_for
    from tinylm.eval.minimal_pairs import evaluate_minimal_pairs, limit_per_paradigm, read_minimal_pairs
    from tinylm.eval.scoring import Scorer

    loaded = [load_any(r) for r in two_runs]
    pairs = limit_per_paradigm(read_minimal_pairs(small_blimp), 30)
    by_hand = evaluate_minimal_pairs(Scorer.for_models([m.model for m in loaded]), loaded[0].tokenizer,
                                     special_ids_for(loaded[0]), pairs)
    got = _eval(capsys, "--ensemble", *two_runs, "--blimp", small_blimp, "--limit", 30, "--out", tmp_path)
    assert got["results"]["blimp"]["paradigms"] == by_hand["paradigms"]
    assert np.isclose(got["results"]["blimp"]["mean"], by_hand["mean"])


def test_ensemble_mistakes_are_one_line(two_runs, small_blimp, tmp_path, one_line_error):
    other = tmp_path / "neox"
    from tinylm.rundir.checkpoints import latest_checkpoint
    shutil.copytree(latest_checkpoint(two_runs[1]), other)
    shutil.copyfile(package_file("assets", "tokenizers", "gpt-neox-20b", "tokenizer.json"), other / "tokenizer.json")
    blimp = ["--blimp", str(small_blimp)]
    one_line_error(["eval", "--ensemble", str(two_runs[0]), str(other), *blimp], str(other), "another tokenizer")
    one_line_error(["eval", "--ensemble", str(two_runs[0]), *blimp], "one member")
    one_line_error(["eval", str(two_runs[0]), "--ensemble", str(two_runs[1]), str(two_runs[0]), *blimp], "not both")
    one_line_error(["eval", *blimp], "no model")
    one_line_error(["eval", "--ensemble", str(two_runs[0]), str(tmp_path / "gone"), *blimp], "does not exist")
