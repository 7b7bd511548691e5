"""A user's mistake ends with one line naming the problem and the fix, exit status 2, no traceback."""

import pytest

from tinylm.cli.main import main


def _one_line_error(capsys, argv, *needles):
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in err, err
    return err


def test_unknown_preset_lists_valid_ones(capsys, tiny_recipe, tmp_path):
    path = tiny_recipe(model={"name": "babyllama-17m"})
    _one_line_error(capsys, ["train", str(path), "--out", str(tmp_path / "r")], "babyllama-17m", "babyllama2-16m")
    assert not (tmp_path / "r").exists()


def test_malformed_spec(capsys, tiny_recipe, tmp_path):
    path = tiny_recipe(model={"name": "L6-8(x)-512x4"})
    _one_line_error(capsys, ["train", str(path), "--out", str(tmp_path / "r")], "L6-8(x)-512x4")


def test_misspelled_recipe_key_suggests_the_right_one(capsys, tiny_recipe, tmp_path):
    path = tiny_recipe(train={"lerning_rate": 1e-3})
    _one_line_error(capsys, ["train", str(path)], "train.lerning_rate")
    path = tiny_recipe(train={"batchsize": 3})
    _one_line_error(capsys, ["train", str(path)], "did you mean `batch_size`")


def test_missing_token_store(capsys, tiny_recipe, tmp_path):
    path = tiny_recipe(data={"store": str(tmp_path / "nowhere")})
    _one_line_error(capsys, ["train", str(path), "--out", str(tmp_path / "r")], "nowhere", "tinylm prepare")
    assert not (tmp_path / "r").exists()


def test_store_vocabulary_larger_than_model(capsys, tiny_recipe, tmp_path):
    path = tiny_recipe(model={"name": "L2-4-32x2", "vocab_size": 1000})
    _one_line_error(capsys, ["train", str(path), "--out", str(tmp_path / "r")], "50257", "1000", "vocab_size")
    assert not (tmp_path / "r").exists()


def test_unknown_method_and_bad_override(capsys, tiny_recipe, tmp_path):
    path = tiny_recipe(methods=["slep"])
    _one_line_error(capsys, ["train", str(path), "--out", str(tmp_path / "r")], "unknown method 'slep'")
    _one_line_error(capsys, ["train", str(tiny_recipe()), "--set", "train.lr"], "KEY=VALUE")


def test_resume_where_no_run_is(capsys, tiny_recipe, tmp_path):
    _one_line_error(capsys, ["train", str(tiny_recipe()), "--out", str(tmp_path / "r"), "--resume"], "--resume")


def test_debug_shows_the_traceback(tiny_recipe, tmp_path):
    from tinylm.errors import UserError
    path = tiny_recipe(train={"lerning_rate": 1e-3})
    with pytest.raises(UserError):
        main(["--debug", "train", str(path)])
