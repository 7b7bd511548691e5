"""`tinylm eval`, `tinylm export` and `tinylm compare` end to end on a tiny trained run."""

import json
import os
import shutil

import numpy as np
import pytest
import yaml

from tinylm.cli.main import main

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_store):
    """A 20-step tiny Llama on the Alice store (its final validation loss is in summary.json)."""
    from tinylm.runs.execute import execute
    from tinylm.train.recipe import load_recipe

    d = tmp_path_factory.mktemp("eval-run")
    recipe = {"name": "tiny", "data": {"store": str(tiny_store), "seq_len": 32, "sampler": "windows"},
              "model": {"name": "L2-4-32x2", "flavour": "llama"},
              "train": {"duration": "20 steps", "batch_size": 4, "lr": 3e-3, "log_every": 5},
              "eval": {"every": 20, "windows": 8, "batch_size": 8}, "checkpoint": {"every": 20}}
    path = d / "tiny.yaml"
    path.write_text(yaml.safe_dump(recipe))
    execute(load_recipe(str(path)), d / "run")
    return d / "run"


@pytest.fixture(scope="module")
def small_blimp(tmp_path_factory, fixtures):
    """Two paradigms of the BLiMP fixture (40 pairs each)."""
    d = tmp_path_factory.mktemp("blimp") / "blimp"
    d.mkdir()
    for name in ("anaphor_gender_agreement", "regular_plural_subject_verb_agreement_1"):
        shutil.copyfile(fixtures / "blimp" / f"{name}.jsonl", d / f"{name}.jsonl")
    return d


@pytest.fixture(scope="module")
def hellaswag(fixtures):
    return fixtures / "hellaswag" / "val-first30.txt"


def test_eval_writes_results_into_the_run(trained, small_blimp, hellaswag, tiny_store, capsys):
    before = json.loads((trained / "summary.json").read_text())
    code = main(["eval", str(trained), "--blimp", str(small_blimp), "--hellaswag", str(hellaswag), "--limit", "20",
                 "--val", str(tiny_store), "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0
    blimp = out["results"]["blimp"]
    assert blimp["pairs"] == 40 and blimp["paradigm_count"] == 2 and 0 <= blimp["mean"] <= 1
    assert blimp["scoring"]["start_token"] == "<|endoftext|>"
    assert blimp["mean"] == pytest.approx(np.mean([p["accuracy"] for p in blimp["paradigms"].values()]))
    hs = out["results"]["hellaswag"]
    assert hs["items"] == 20 and {"acc", "acc_norm"} <= set(hs)
    # the fixed seeded windows of training: the same number as the training loop's last evaluation
    assert out["results"]["val"]["val_loss"] == pytest.approx(before["val_loss"], abs=1e-6)
    for name in ("blimp", "hellaswag", "val"):
        assert (trained / "eval" / f"{name}.json").is_file()
    summary = json.loads((trained / "summary.json").read_text())
    assert summary["blimp_mean"] == blimp["mean"] and summary["hellaswag_acc_norm"] == hs["acc_norm"]
    assert summary["val_loss"] == pytest.approx(before["val_loss"], abs=1e-6) and summary["steps"] == before["steps"]

    assert main(["eval", str(trained), "--blimp", str(small_blimp), "--limit", "5", "--quiet"]) == 0
    table = capsys.readouterr().out
    assert "mean over paradigms" in table and "anaphor" not in table and "written:" in table


def test_eval_errors_are_one_line(trained, tmp_path, fixtures, hellaswag, one_line_error):
    one_line_error(["eval", str(trained), "--blimp", str(fixtures / "blimp"), "--limit", "0"], "--limit")
    one_line_error(["eval", str(trained)], "nothing to evaluate")
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    one_line_error(["eval", str(trained), "--blimp", str(empty)], "empty")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"sentence_good": "A cat sleeps.", "sentence_bad": "A cat sleep."}\n{"sentence": "x"}\n')
    one_line_error(["eval", str(trained), "--blimp", str(bad)], "bad.jsonl:2:", "sentence_good")
    lines = hellaswag.read_text().splitlines()[:12]
    hs = tmp_path / "hs.txt"
    hs.write_text("\n".join(lines[:5] + lines[6:]) + "\n")
    one_line_error(["eval", str(trained), "--hellaswag", str(hs)], "hs.txt:", "endings")
    ckpt = tmp_path / "ckpt"
    shutil.copytree(trained / "checkpoints" / (trained / "checkpoints" / "latest").read_text().strip(), ckpt)
    (ckpt / "tokenizer.json").unlink()
    one_line_error(["eval", str(ckpt), "--hellaswag", str(hellaswag)], "tokenizer.json")


def test_an_older_checkpoint_writes_beside_the_summary_not_into_it(trained, small_blimp, capsys):
    latest = trained / "checkpoints" / (trained / "checkpoints" / "latest").read_text().strip()
    older = trained / "checkpoints" / "step-00000010"
    shutil.copytree(latest, older)
    before = (trained / "summary.json").read_text()
    try:
        assert main(["eval", str(older), "--blimp", str(small_blimp), "--limit", "5", "--quiet"]) == 0
        assert "step 10" in capsys.readouterr().out
        assert (trained / "eval" / "step-00000010" / "blimp.json").is_file()
        assert (trained / "summary.json").read_text() == before
    finally:
        shutil.rmtree(older)


def test_export_cli_and_import_of_the_export(trained, tmp_path, small_blimp, capsys, one_line_error):
    transformers = pytest.importorskip("transformers")
    out = tmp_path / "hf"
    assert main(["export", str(trained), "--out", str(out)]) == 0
    assert "LlamaForCausalLM" in capsys.readouterr().out
    model = transformers.AutoModelForCausalLM.from_pretrained(str(out), local_files_only=True)
    assert model.config.model_type == "llama"
    capsys.readouterr()  # transformers' own loading messages
    one_line_error(["export", str(trained), "--out", str(out)], "--force")
    # the exported directory evaluates like the run it came from (import path)
    assert main(["eval", str(out), "--blimp", str(small_blimp), "--limit", "10", "--json",
                 "--out", str(tmp_path / "via-hf")]) == 0
    via_hf = json.loads(capsys.readouterr().out)["results"]["blimp"]
    assert main(["eval", str(trained), "--blimp", str(small_blimp), "--limit", "10", "--json",
                 "--out", str(tmp_path / "elsewhere")]) == 0
    ours = json.loads(capsys.readouterr().out)["results"]["blimp"]
    assert via_hf["paradigms"] == ours["paradigms"]
    assert (tmp_path / "elsewhere" / "blimp.json").is_file()
    # a transformers directory's per-item results (written where --out says) agree item by item
    assert main(["compare", str(tmp_path / "via-hf"), str(tmp_path / "elsewhere"), "--paired", "--json",
                 "--resamples", "100"]) == 0
    mean = json.loads(capsys.readouterr().out)["tasks"]["blimp"]["rows"][0]
    assert mean["n"] == 20 and (mean["difference"], mean["a_only"], mean["b_only"], mean["mcnemar_p"]) == (0, 0, 0, 1)


def test_compare_correlation(tmp_path, capsys, one_line_error):
    rng = np.random.default_rng(0)
    losses = rng.uniform(3, 5, size=6)
    blimps = 0.9 - 0.08 * losses + rng.normal(0, 0.01, size=6)
    for i, (loss, b) in enumerate(zip(losses, blimps)):
        run = tmp_path / "runs" / f"r{i}"
        run.mkdir(parents=True)
        (run / "summary.json").write_text(json.dumps({"val_loss": loss, "blimp_mean": b}))
    (tmp_path / "runs" / "unevaluated").mkdir()
    (tmp_path / "runs" / "unevaluated" / "summary.json").write_text(json.dumps({"val_loss": 4.0}))
    assert main(["compare", str(tmp_path / "runs"), "--corr", "val_loss", "blimp", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    r = np.corrcoef(losses, blimps)[0, 1]
    assert result["n"] == 6 and result["pearson_r"] == pytest.approx(r) and result["r2"] == pytest.approx(r * r)
    assert result["skipped"] == [{"run": str(tmp_path / "runs" / "unevaluated"), "missing": ["blimp"]}]
    assert main(["compare", str(tmp_path / "runs"), "--corr", "val_loss", "blimp"]) == 0
    assert "R² =" in capsys.readouterr().out
    one_line_error(["compare", str(tmp_path / "runs" / "r0"), str(tmp_path / "runs" / "r1"),
                             "--corr", "val_loss", "blimp"], "at least 3")


def test_validation_refuses_a_store_of_another_tokenizer(tmp_path):
    from types import SimpleNamespace

    from tinylm.data.tokenizer import load_tokenizer
    from tinylm.errors import UserError
    from tinylm.eval.validation import check_same_tokenizer

    gpt2 = load_tokenizer("gpt2")
    path = tmp_path / "tokenizer.json"
    gpt2.save(str(path))
    store = SimpleNamespace(meta={"tokenizer": {"name": "bert-base-uncased", "sha256": "0" * 64}},
                            tokenizer=load_tokenizer("bert-base-uncased"), path=tmp_path / "store")
    with pytest.raises(UserError, match="bert-base-uncased.*tinylm prepare"):
        check_same_tokenizer(path, gpt2, store)
    check_same_tokenizer(path, gpt2, SimpleNamespace(meta={"tokenizer": {}}, tokenizer=gpt2, path=tmp_path))


@pytest.mark.parametrize("kind, sampler", [("decoder", "windows"), ("encoder", "mlm")])
def test_validation_without_a_recipe_scores_what_a_default_run_logs(kind, sampler):
    """A checkpoint moved away from its run (no config.yaml) is scored on the windows, seed, batching and
    masking of a recipe's defaults: the number a default run logged as val_loss."""
    from types import SimpleNamespace

    from tinylm.eval.validation import validation_settings
    from tinylm.train.recipe import DataSection, EvalSection

    model = SimpleNamespace(config=SimpleNamespace(kind=kind, max_seq_len=512))
    chosen, data, ev = validation_settings(model), DataSection(sampler=sampler), EvalSection()
    assert (chosen.sampler, chosen.seq_len, chosen.mlm_probability) == (sampler, data.seq_len, data.mlm_probability)
    assert (chosen.windows, chosen.batch_size, chosen.seed) == (ev.windows, ev.batch_size, ev.seed)
    assert chosen.origin == "defaults (no run recipe)"
