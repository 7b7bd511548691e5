"""`tinylm adapt`: new tokenizer, fresh embeddings, body frozen; and its one-line refusals."""

import json

import pytest
import torch
from safetensors.torch import load_file

from tinylm.cli.main import main
from tinylm.runs.execute import execute
from tinylm.rundir.checkpoints import latest_checkpoint
from tinylm.train.recipe import load_recipe


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory, book, fixtures):
    from tinylm.data import prepare_store
    root = tmp_path_factory.mktemp("adapt")
    src = root / "alice.txt"
    src.write_text(book("AliceInWonderland")[:60_000])
    store = root / "store-en"
    prepare_store([str(src)], "bpe:400", store, val_fraction=0.1, seed=0)
    recipe = root / "en.yaml"
    recipe.write_text(json.dumps({
        "name": "en", "data": {"store": str(store), "seq_len": 32},
        "model": {"name": "L2-2-32x2", "flavour": "neox"},
        "train": {"duration": 10, "batch_size": 4, "lr": 3e-3}, "eval": {"windows": 8}}))
    execute(load_recipe(str(recipe)), root / "run-en")
    german = fixtures / "german" / "grimm-2-head.txt"  # 48 KB of Grimms' tales
    return root, german, store


def test_adapt_trains_only_the_new_vocabulary(pretrained, capsys):
    root, german, _ = pretrained
    out = root / "adapted"
    assert main(["adapt", str(root / "run-en"), "--corpus", str(german), "--tokenizer", "bpe:300", "--out", str(out),
                 "--duration", "12 steps", "--target-loss", "100"]) == 0
    report = json.loads((out / "adaptation.json").read_text())
    assert report["steps"] == 12 and report["steps_to_target"] is not None and report["loss_auc"] > 0
    before = load_file(str(latest_checkpoint(root / "run-en") / "model.safetensors"))
    after = load_file(str(latest_checkpoint(out / "run") / "model.safetensors"))
    vocab = {"embed_tokens.weight", "lm_head.weight"}
    assert after["embed_tokens.weight"].shape[0] < before["embed_tokens.weight"].shape[0]  # the German tokenizer
    for name in before:
        if name not in vocab:
            assert torch.equal(before[name], after[name]), f"{name} moved although the body is frozen"
    metrics = (out / "run" / "metrics.jsonl").read_text()
    assert '"event": "set_trainable"' in metrics


def test_adapting_with_the_pretraining_tokenizer_is_refused(pretrained, capsys, tmp_path):
    root, _, store = pretrained
    code = main(["adapt", str(root / "run-en"), "--store", str(store), "--out", str(tmp_path / "x")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "pretraining tokenizer" in err
