"""A user's mistake ends with one line naming the problem and the fix, exit status 2, no traceback."""

import pytest

from tinylm.cli.main import main


def test_unknown_preset_lists_valid_ones(one_line_error, tiny_recipe, tmp_path):
    path = tiny_recipe(model={"name": "babyllama-17m"})
    one_line_error(["train", str(path), "--out", str(tmp_path / "r")], "babyllama-17m", "babyllama2-16m")
    assert not (tmp_path / "r").exists()


def test_malformed_spec(one_line_error, tiny_recipe, tmp_path):
    path = tiny_recipe(model={"name": "L6-8(x)-512x4"})
    one_line_error(["train", str(path), "--out", str(tmp_path / "r")], "L6-8(x)-512x4")


def test_misspelled_recipe_key_suggests_the_right_one(one_line_error, tiny_recipe, tmp_path):
    path = tiny_recipe(train={"lerning_rate": 1e-3})
    one_line_error(["train", str(path)], "train.lerning_rate")
    path = tiny_recipe(train={"batchsize": 3})
    one_line_error(["train", str(path)], "did you mean `batch_size`")


def test_missing_token_store(one_line_error, tiny_recipe, tmp_path):
    path = tiny_recipe(data={"store": str(tmp_path / "nowhere")})
    one_line_error(["train", str(path), "--out", str(tmp_path / "r")], "nowhere", "tinylm prepare")
    assert not (tmp_path / "r").exists()


def test_store_vocabulary_larger_than_model(one_line_error, tiny_recipe, tmp_path):
    path = tiny_recipe(model={"name": "L2-4-32x2", "vocab_size": 1000})
    one_line_error(["train", str(path), "--out", str(tmp_path / "r")], "50257", "1000", "vocab_size")
    assert not (tmp_path / "r").exists()


def test_unknown_method_and_bad_override(one_line_error, tiny_recipe, tmp_path):
    path = tiny_recipe(methods=["slep"])
    one_line_error(["train", str(path), "--out", str(tmp_path / "r")], "unknown method 'slep'")
    one_line_error(["train", str(tiny_recipe()), "--set", "train.lr"], "KEY=VALUE")


def test_resume_where_no_run_is(one_line_error, tiny_recipe, tmp_path):
    # with a recipe, --resume where no run is yet starts it (tests/hostile/test_kill_windows.py); without one
    # there is nothing to start from
    one_line_error(["train", "--out", str(tmp_path / "r"), "--resume"], "no run to resume", "RECIPE")


def test_debug_shows_the_traceback(tiny_recipe, tmp_path):
    from tinylm.errors import UserError
    path = tiny_recipe(train={"lerning_rate": 1e-3})
    with pytest.raises(UserError):
        main(["--debug", "train", str(path)])
