"""Pickle at the door (issue 16, class 2): a transformers directory whose weights are `pytorch_model.bin` (a
pickle: loading it runs whatever code it carries) is refused in one line before anything is loaded, by
every command that takes a model: eval, eval --ensemble, export, generate, surgery, and a distill teacher.
Before: transformers reached `torch.load` and ended in `UnpicklingError: Weights only load failed` with
a traceback. Every test in this folder that asks for `no_unpickling` fails if `torch.load` or
`pickle.load` is reached at all.
"""

import os
import shutil

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

pytestmark = pytest.mark.usefixtures("no_unpickling")

# A pickle that would print if anything unpickled it (it is never loaded; the guard would catch torch.load).
PICKLE = b"cbuiltins\nprint\n(S'unpickled: tinylm must never do this'\ntR."


@pytest.fixture(scope="module")
def exported(trained_run, tmp_path_factory):
    """The trained run exported to a transformers directory (config.json, model.safetensors, tokenizer)."""
    pytest.importorskip("transformers")
    from tinylm.cli.main import main

    out = tmp_path_factory.mktemp("hf") / "model"
    assert main(["export", str(trained_run), "--out", str(out)]) == 0
    return out


@pytest.fixture
def pickled_dir(exported, tmp_path):
    """The export with its weights as `pytorch_model.bin` only, as older transformers saved them."""
    path = tmp_path / "pickled"
    shutil.copytree(exported, path)
    (path / "model.safetensors").unlink()
    (path / "pytorch_model.bin").write_bytes(PICKLE)
    return path


def _argv(command, model, run, store, tmp_path):
    recipe = tmp_path / "recipe.yaml"
    shutil.copyfile(run / "config.yaml", recipe)
    return {
        "eval": (["eval", model, "--val", store, "--out", tmp_path / "ev"], [tmp_path / "ev"]),
        "eval-ensemble": (["eval", "--ensemble", run, model, "--val", store, "--out", tmp_path / "ev"],
                          [tmp_path / "ev"]),
        "export": (["export", model, "--out", tmp_path / "again"], [tmp_path / "again"]),
        "generate": (["generate", model, "--prompt", "Alice", "--tokens", "2"], []),
        "surgery": (["surgery", "reset-embeddings", model, "--out", tmp_path / "cut"], [tmp_path / "cut"]),
        "teacher": (["train", recipe, "--out", tmp_path / "student", "--set",
                     f"methods=[{{distill: {{teachers: [{model}]}}}}]"], []),  # the student's --out: class 8's
    }[command]


@pytest.mark.parametrize("command", ["eval", "eval-ensemble", "export", "generate", "surgery", "teacher"])
def test_pytorch_model_bin_is_refused_before_any_load(command, pickled_dir, trained_run, tiny_store, tmp_path,
                                                      assert_user_error):
    argv, watch = _argv(command, pickled_dir, trained_run, tiny_store, tmp_path)
    assert_user_error(argv, "pytorch_model.bin", "safetensors", watch=[pickled_dir, *watch])


def test_safetensors_beside_a_pickle_are_read_and_the_pickle_never(exported, tiny_store, tmp_path, capsys):
    """transformers prefers model.safetensors, and is told never to fall back to the .bin (use_safetensors)."""
    from tinylm.cli.main import main

    both = tmp_path / "both"
    shutil.copytree(exported, both)
    (both / "pytorch_model.bin").write_bytes(PICKLE)
    assert main(["eval", str(both), "--val", str(tiny_store), "--out", str(tmp_path / "ev"), "--json"]) == 0
    assert "val_loss" in capsys.readouterr().out


def test_the_guard_catches_torch_load_and_pickle_load(tmp_path, no_unpickling):
    """The guard itself: both doors raise (a BaseException no `except Exception` swallows) and are recorded."""
    import pickle

    import torch

    path = tmp_path / "x.pkl"
    path.write_bytes(PICKLE)
    for load in (lambda: torch.load(str(path)), lambda: pickle.load(open(path, "rb"))):
        with pytest.raises(BaseException, match="must never unpickle"):
            load()
    assert no_unpickling == ["torch.load", "pickle.load"]
    no_unpickling.clear()  # recorded as it should be; the teardown check stays quiet


HF_DAMAGE = {  # a transformers directory's own files, torn: one line naming them
    "config-garbage": (lambda d: (d / "config.json").write_bytes(b'{"model_type": '), "config.json"),
    "config-binary": (lambda d: (d / "config.json").write_bytes(b"\xff\xfe\x00"), "config.json"),
    "weights-truncated": (lambda d: (d / "model.safetensors").write_bytes((d / "model.safetensors").read_bytes()[:99]),
                          "model"),
}


@pytest.mark.parametrize("command", ["eval", "export", "generate"])
@pytest.mark.parametrize("case", list(HF_DAMAGE))
def test_a_damaged_transformers_directory_is_one_line(case, command, exported, trained_run, tiny_store, tmp_path,
                                                      assert_user_error):
    model = tmp_path / "hf"
    shutil.copytree(exported, model)
    damage, needle = HF_DAMAGE[case]
    damage(model)
    argv, watch = _argv(command, model, trained_run, tiny_store, tmp_path)
    assert_user_error(argv, needle, str(model), watch=[model, *watch])
