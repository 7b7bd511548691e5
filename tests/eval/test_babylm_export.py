"""`tinylm export RUN --babylm DIR`: BabyLM 2025 revisions (chck_*, main), a model card, pipeline predictions."""

import json
import shutil

import pytest
import torch

from tinylm.cli.main import main
from tinylm.eval.minimal_pairs import evaluate_minimal_pairs, read_minimal_pairs


@pytest.fixture(scope="module")
def exported(words_runs, fixtures, tmp_path_factory):
    _, run, _ = words_runs
    out = tmp_path_factory.mktemp("babylm") / "tiny-babylm"
    blimp = tmp_path_factory.mktemp("blimp") / "blimp_fast"
    shutil.copytree(fixtures / "blimp", blimp)
    assert main(["export", str(run), "--babylm", str(out), "--blimp", str(blimp)]) == 0
    return run, out, blimp


def test_every_words_checkpoint_and_main_load_with_auto_classes_and_give_our_logits(exported):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tinylm.loading import load_model
    from tinylm.rundir.checkpoints import latest_checkpoint, state_summary

    run, out, _ = exported
    table = state_summary(latest_checkpoint(run))["word_checkpoints"]
    assert sorted(p.name for p in out.iterdir() if (p / "config.json").is_file()) == sorted([*table, "main"])
    steps = {name: f"step-{e['step']:08d}" for name, e in table.items()} | {"main": latest_checkpoint(run).name}
    for name, step in steps.items():
        hf = AutoModelForCausalLM.from_pretrained(out / name, local_files_only=True).eval()
        tok = AutoTokenizer.from_pretrained(out / name, local_files_only=True)
        ids = tok("Alice was beginning to get very tired of sitting by her sister.", return_tensors="pt")["input_ids"]
        ours = load_model(run / "checkpoints" / step).model.eval()
        with torch.no_grad():
            assert torch.allclose(hf(input_ids=ids).logits, ours(ids), atol=1e-4), name


def test_the_model_card_states_words_tokens_flops_and_the_recipe(exported):
    _, out, _ = exported
    card = (out / "README.md").read_text()
    for needle in ("words seen", "tokens", "FLOPs", "| chck_100 | 3 |", "| main | 16 |", "its train split:", "## Recipe", "L1-2-16x2",
                   "BLiMP blimp_fast @ main"):
        assert needle in card, needle


def test_the_card_cites_the_papers_of_the_recipes_methods(exported, tmp_path):
    import yaml

    from tinylm.runs.babylm_card import model_card
    from tinylm.runs.babylm_export import plan

    run, _, _ = exported
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    config = yaml.safe_load((copy / "config.yaml").read_text())
    config["methods"] = [{"sleep": {}}, {"distill": {}}]
    (copy / "config.yaml").write_text(yaml.safe_dump(config))
    card = model_card(copy, plan(copy), "x", {})
    assert "FORGETTER with forgetful hyperparameters" in card and "BabyLlama-2: Ensemble-Distilled" in card
    assert "Active Forgetting" not in card  # only the methods the recipe uses


def test_blimp_predictions_are_the_pipelines_format_and_agree_with_our_scoring(exported):
    from tinylm.eval.hf_import import special_ids_for
    from tinylm.eval.scoring import Scorer
    from tinylm.loading import load_model

    run, out, blimp = exported
    path = out / "results" / out.name / "main" / "zero_shot" / "causal" / "blimp" / "blimp_fast" / "predictions.json"
    got = json.loads(path.read_text())
    pairs = read_minimal_pairs(blimp)
    assert set(got) == {p.paradigm for p in pairs}
    loaded = load_model(run)
    specials = special_ids_for(loaded)
    ours = evaluate_minimal_pairs(Scorer.for_models([loaded.model]), loaded.tokenizer, specials, pairs)
    for uid, entry in got.items():
        mine = [p for p in pairs if p.paradigm == uid]
        assert [x["id"] for x in entry["predictions"]] == [f"{uid}_{i}" for i in range(len(mine))]
        right = [x["pred"] == p.good for x, p in zip(entry["predictions"], mine)]
        assert all(x["pred"] in (p.good, p.bad) for x, p in zip(entry["predictions"], mine))
        assert sum(right) == ours["paradigms"][uid]["correct"]


def test_a_run_without_words_checkpoints_is_one_line_and_creates_nothing(trained_run, tmp_path, one_line_error):
    one_line_error(["export", str(trained_run), "--babylm", str(tmp_path / "out")], "no words checkpoints",
                   "checkpoint: {words: babylm}")
    assert not (tmp_path / "out").exists()


def test_bad_babylm_arguments_are_one_line(exported, tmp_path, one_line_error):
    run, out, _ = exported
    one_line_error(["export", str(run)], "--out DIR", "--babylm DIR")
    one_line_error(["export", str(tmp_path), "--babylm", str(tmp_path / "o")], "not a run directory")
    one_line_error(["export", str(run), "--babylm", str(out)], "already exists")
    one_line_error(["export", str(run), "--out", str(tmp_path / "o"), "--blimp", "x"], "--blimp", "--babylm")
    assert not (tmp_path / "o").exists()
