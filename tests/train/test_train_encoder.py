"""Encoders train through the same loop: padded documents, BERT's MLM masking, exact resume."""

import torch
from safetensors.torch import load_file

from tinylm.runs.execute import execute
from tinylm.rundir.checkpoints import latest_checkpoint
from tinylm.train.recipe import recipe_from_dict


def _recipe(store, steps=30):
    return recipe_from_dict({
        "name": "bert-mini", "data": {"store": str(store), "sampler": "mlm", "seq_len": 32},
        "model": {"name": "L2-2-32x2", "flavour": "bert", "dropout": 0.1},
        "train": {"duration": steps, "batch_size": 8, "lr": 5e-3, "log_every": 4},
        "eval": {"every": 10, "windows": 16, "batch_size": 8}, "checkpoint": {"every": 0}})


def test_mlm_training_learns_and_resumes_exactly(tiny_bert_store, tmp_path):
    straight = execute(_recipe(tiny_bert_store), tmp_path / "a")
    assert straight["complete"] and straight["val_loss"] < 10.0  # log(30522) = 10.3 at chance

    def stop_at_7(run, record):
        if run.step == 7:
            run.stop_requested = True

    execute(_recipe(tiny_bert_store), tmp_path / "b", on_step=stop_at_7)
    resumed = execute(_recipe(tiny_bert_store), tmp_path / "b", resume=True)
    a = load_file(str(latest_checkpoint(tmp_path / "a") / "model.safetensors"))
    b = load_file(str(latest_checkpoint(tmp_path / "b") / "model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)  # dropout RNG and masking positions restored too
    assert resumed["val_loss"] == straight["val_loss"]


def test_decoder_recipe_on_an_encoder_store_is_refused(tiny_bert_store):
    import pytest

    from tinylm.errors import UserError
    from tinylm.train.build import build_run
    bad = recipe_from_dict({"data": {"store": str(tiny_bert_store), "sampler": "mlm", "seq_len": 32},
                            "model": {"name": "L2-2-32x2", "flavour": "llama"}})
    with pytest.raises(UserError, match="use windows, chunks or epochs"):
        build_run(bad)
