"""Recipes a user (or a tool) got wrong are one line (issue 16, class 6).

Before: a Latin-1 or binary recipe ended in a UnicodeDecodeError traceback, a key given twice was taken
silently (the later won), `--set 'train.lr=[1,'` was a YAML ParserError traceback, and a recipe named
`../../escaped-run` (or `/tmp/x`) wrote its run outside `runs/`: a run name is a name, not a path.
"""

import os

import pytest
import yaml

from tinylm.errors import UserError
from tinylm.train.recipe import load_recipe

GOOD = {"name": "tiny", "data": {"store": "STORE", "seq_len": 32},
        "model": {"name": "L2-4-32x2", "flavour": "llama"},
        "train": {"duration": "40 steps", "batch_size": 4, "lr": 3e-3, "precision": "fp32"}}


def _good_text(store) -> str:
    return yaml.safe_dump(GOOD).replace("STORE", str(store))


# name -> (the recipe's bytes from the good recipe's text, the text the one line must hold)
FILES = {
    "latin-1": (lambda t: t.replace("name: tiny", "name: caf\u00e9").encode("latin-1"), "not UTF-8"),
    "binary": (lambda t: bytes(range(256)) * 4, "not UTF-8"),
    "utf-16": (lambda t: t.encode("utf-16"), "not UTF-8"),
    "gzip-by-mistake": (lambda t: __import__("gzip").compress(t.encode()), "not UTF-8"),
    "duplicate-top-level-key": (lambda t: (t + "name: other\n").encode(), "'name' appears twice"),
    "duplicate-nested-key": (lambda t: t.replace("  lr: 0.003\n", "  lr: 0.003\n  lr: 1.0\n").encode(),
                             "'lr' appears twice"),
    "duplicate-section": (lambda t: (t + "train:\n  lr: 0.1\n").encode(), "'train' appears twice"),
    "duplicate-method-option": (lambda t: (t + "methods:\n- sleep:\n    episode: 10\n    episode: 20\n").encode(),
                                "'episode' appears twice"),
    "unclosed-list": (lambda t: (t + "methods: [sleep\n").encode(), "not valid YAML"),
    "bad-indentation": (lambda t: t.replace("  lr: 0.003", " lr: 0.003").encode(), "not valid YAML"),
    "tab-indentation": (lambda t: t.replace("  lr: 0.003", "\tlr: 0.003").encode(), "not valid YAML"),
    "a-list-not-a-mapping": (lambda t: b"- data\n- model\n", "YAML mapping"),
    "a-bare-string": (lambda t: b"just some words\n", "YAML mapping"),
    "python-tag": (lambda t: (t + "evil: !!python/object/apply:os.system ['true']\n").encode(), "not valid YAML"),
    "section-not-a-mapping": (lambda t: t.replace("train:\n", "train: fast\nunused:\n").encode(), "train"),
    "name-escapes-runs": (lambda t: t.replace("name: tiny", "name: ../../escaped-run").encode(), "not a path"),
    "name-absolute": (lambda t: t.replace("name: tiny", "name: /tmp/elsewhere").encode(), "not a path"),
    "name-dot-dot": (lambda t: t.replace("name: tiny", "name: '..'").encode(), "not a path"),
    "name-with-a-slash": (lambda t: t.replace("name: tiny", "name: a/b").encode(), "not a path"),
    "name-home": (lambda t: t.replace("name: tiny", "name: ~/runs").encode(), "not a path"),
    "name-empty": (lambda t: t.replace("name: tiny", "name: ''").encode(), "not a path"),
    "name-newline": (lambda t: t.replace("name: tiny", 'name: "a\\nb"').encode(), "not a path"),
    "name-a-list": (lambda t: t.replace("name: tiny", "name: [a, b]").encode(), "not a string"),
}


@pytest.mark.parametrize("case", sorted(FILES))
def test_a_bad_recipe_file_is_one_line(case, assert_user_error, tiny_store, tmp_path):
    make, needle = FILES[case]
    path = tmp_path / "recipe.yaml"
    path.write_bytes(make(_good_text(tiny_store)))
    out = tmp_path / "run"
    assert_user_error(["train", path, "--out", out], needle, watch=[out])


def test_the_good_recipe_loads(tiny_store, tmp_path):
    path = tmp_path / "recipe.yaml"
    path.write_text(_good_text(tiny_store))
    assert load_recipe(str(path)).name == "tiny"


SETS = [
    ("train.lr=[1,", "--set train.lr=[1,"), ("train.betas=[0.9, 0.95", "not valid YAML"),
    ("train={a", "not valid YAML"), ("name=../../escaped-run", "not a path"), ("name=/abs/run", "not a path"),
    ("train.lr={a: 1, a: 2}", "appears twice"), ("train.lr='unclosed", "not valid YAML"),
    ("train.lr", "KEY=VALUE"), ("train.betas.5=0.9", "train.betas"), ("methods.3.sleep.episode=5", "methods"), ("train.lr.x=1", "not a section"),
    ("train.lr=@", "not valid YAML"),
]


@pytest.mark.parametrize("item,needle", SETS, ids=[s[0] for s in SETS])
def test_a_bad_set_is_one_line(item, needle, assert_user_error, tiny_recipe, tmp_path):
    out = tmp_path / "run"
    assert_user_error(["train", tiny_recipe(), "--out", out, "--set", item], needle, watch=[out])


def test_a_run_named_like_a_path_never_writes_outside_runs(assert_user_error, tiny_recipe, tmp_path, monkeypatch):
    """Without --out a run goes to runs/<name>: `../../escaped-run` would have left runs/ (and the cwd)."""
    work = tmp_path / "a" / "b"
    work.mkdir(parents=True)
    monkeypatch.chdir(work)
    recipe = tiny_recipe(name="tiny")
    data = yaml.safe_load(recipe.read_text())
    data["name"] = "../../escaped-run"
    recipe.write_text(yaml.safe_dump(data))
    assert_user_error(["train", recipe], "not a path", watch=[tmp_path / "escaped-run", work / "runs"])
    assert not (tmp_path / "escaped-run").exists() and not os.listdir(work)


def test_names_that_are_names_still_load(tiny_recipe):
    for name in ("forgetter-tiny", "run_1.5", "BabyLlama 2", "seed0", "grow+sleep"):
        path = tiny_recipe(name="n")
        data = yaml.safe_load(path.read_text())
        data["name"] = name
        path.write_text(yaml.safe_dump(data))
        assert load_recipe(str(path)).name == name


def test_duplicate_keys_are_refused_with_the_line(tiny_store, tmp_path):
    path = tmp_path / "recipe.yaml"
    path.write_text(_good_text(tiny_store) + "name: other\n")
    with pytest.raises(UserError, match=r"'name' appears twice.*line \d+"):
        load_recipe(str(path))


@pytest.mark.parametrize("content,needle", [(b"train.lr: {low: 1e-4, high: 1e-3}\ntrain.lr: [1, 2]\n", "appears twice"),
                                            (b"train.lr: {low: \xe9}\n", "not UTF-8"),
                                            (b"train.lr: [1,\n", "not valid YAML")])
def test_a_bad_search_space_file_is_one_line(content, needle, assert_user_error, tiny_recipe, tmp_path):
    space = tmp_path / "space.yaml"
    space.write_bytes(content)
    out = tmp_path / "sweep"
    assert_user_error(["sweep", tiny_recipe(), "--space", space, "--out", out, "--yes"], needle, watch=[out])
