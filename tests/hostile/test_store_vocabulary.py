"""A token store whose ids the model cannot embed is refused when the run is built (issue 16, class 7): a store
prepared with another tokenizer than the run being resumed, or a meta.json that records a smaller vocabulary than
the store's ids need. Before: training started and ended in `IndexError: index out of range in self` inside the
embedding (or, on a resume with another tokenizer of a smaller vocabulary, trained on ids meaning other words).
"""

import json
import shutil

import yaml


def _store_with_vocab(tiny_store, tmp_path, vocab):
    store = tmp_path / "edited-store"
    shutil.copytree(tiny_store, store)
    meta = json.loads((store / "meta.json").read_text())
    meta["vocab_size"] = vocab
    (store / "meta.json").write_text(json.dumps(meta))
    return store


def _recipe(tmp_path, store, **train):
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump({"name": "v", "data": {"store": str(store), "seq_len": 16},
                                    "model": {"name": "L1-2-16x2", "flavour": "llama"},
                                    "train": {"duration": "2 steps", "batch_size": 2, "precision": "fp32", **train},
                                    "eval": {"windows": 2, "batch_size": 2}}))
    return path


def test_meta_json_with_a_smaller_vocabulary_is_refused(tiny_store, tmp_path, assert_user_error):
    store = _store_with_vocab(tiny_store, tmp_path, 1000)
    out = tmp_path / "run"
    assert_user_error(["train", _recipe(tmp_path, store), "--out", out, "--quiet"],
                      str(store), "outside the vocabulary of 1000", "meta.json", "tinylm prepare", watch=[out])


def test_a_store_of_another_tokenizer_is_refused_on_resume(trained_run, tiny_bert_store, tmp_path, assert_user_error):
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    assert_user_error(["train", "--out", run, "--resume", "--force", "--set", f"data.store={tiny_bert_store}",
                       "--set", "train.duration=14 steps", "--quiet"],
                      str(tiny_bert_store), "another tokenizer", "bert-base-uncased", "gpt2", watch=[run])


def test_a_model_smaller_than_the_store_vocabulary_is_refused(tiny_store, tmp_path, assert_user_error):
    """A fresh run on an init_from model of the run's architecture with its own small vocabulary is refused by the
    model_config check; here the direct check, through the function, for a model given too few ids."""
    import pytest

    from tinylm.data import TokenStore
    from tinylm.errors import UserError
    from tinylm.train.vocab_check import check_store_fits_model

    with pytest.raises(UserError, match="outside the model's vocabulary of 100"):
        check_store_fits_model(TokenStore.open(tiny_store), 100)
    check_store_fits_model(TokenStore.open(tiny_store), 50257)  # the store's own: fine
