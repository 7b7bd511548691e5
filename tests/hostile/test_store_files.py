"""A token store whose document boundaries are garbage is refused when it is opened (issue 16, classes 13 and
7): offsets that decrease, do not start at 0 or end at the split's token count, disagree with meta.json's
document count, or are not an integer array at all (an object array would be a pickle: never loaded).
Before: `data info` and `train` read such a store without complaint and cut windows in the wrong places.
"""

import json
import shutil

import numpy as np
import pytest

pytestmark = pytest.mark.usefixtures("no_unpickling")


def _offsets(edit):
    def damage(store):
        path = store / "train.docs.npy"
        offsets = np.load(path).copy()
        path.unlink()
        np.save(path, edit(offsets), allow_pickle=True)
    return damage


def _meta(**split):
    def damage(store):
        meta = json.loads((store / "meta.json").read_text())
        meta["splits"]["train"].update(split)
        (store / "meta.json").write_text(json.dumps(meta))
    return damage


def _swap(a, b):
    def edit(x):
        x[a], x[b] = x[b], x[a]
        return x
    return edit


CASES = {  # case -> (damage, what the one line names)
    "offsets-decrease": (_offsets(_swap(1, 2)), ["train.docs.npy", "decrease"]),
    "offsets-not-from-0": (_offsets(lambda x: x + 1), ["train.docs.npy", "boundaries"]),
    "offsets-past-the-end": (_offsets(lambda x: np.append(x[:-1], x[-1] + 10)), ["train.docs.npy", "boundaries"]),
    "offsets-one-short": (_offsets(lambda x: np.delete(x, 1)), ["train.docs.npy", "documents"]),
    "offsets-floats": (_offsets(lambda x: x.astype(np.float64)), ["train.docs.npy", "integers"]),
    "offsets-2d": (_offsets(lambda x: np.stack([x, x])), ["train.docs.npy", "integers"]),
    "offsets-a-pickle": (_offsets(lambda x: np.array([object()] * 3, dtype=object)), ["train.docs.npy"]),
    "offsets-garbage-bytes": (lambda store: (store / "train.docs.npy").write_bytes(b"\x93NUMPY garbage"),
                              ["train.docs.npy"]),
    "offsets-empty-file": (lambda store: (store / "train.docs.npy").write_bytes(b""), ["train.docs.npy"]),
    "meta-documents-negative": (_meta(documents=-3), ["meta.json", "documents"]),
    "meta-documents-wrong": (_meta(documents=7), ["train.docs.npy", "7"]),
    "meta-documents-a-word": (_meta(documents="many"), ["meta.json"]),
    "tokenizer-flipped": (lambda store: (store / "tokenizer.json").write_bytes(
        (store / "tokenizer.json").read_bytes().replace(b'"Alice"', b'"Alicf"', 1)), ["tokenizer.json", "SHA-256"]),
    "tokenizer-garbage": (lambda store: (store / "tokenizer.json").write_bytes(b'{"version": '), ["tokenizer.json"]),
    "meta-file-escapes": (_meta(file="../../../../etc/hostname"), ["meta.json", "etc/hostname"]),
    "meta-docs-file-absolute": (_meta(documents_file="/etc/hostname"), ["meta.json", "/etc/hostname"]),
    "words-one-short": (lambda store: np.save(store / "train.words.npy", np.load(store / "train.words.npy")[:-1]),
                        ["train.words.npy"]),
}


def _commands(store, tmp_path, trained_run):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text((trained_run / "config.yaml").read_text())
    return {
        "data-info": (["data", "info", store], [store]),
        "train": (["train", recipe, "--out", tmp_path / "new", "--set", f"data.store={store}"],
                  [store, tmp_path / "new"]),
        "eval": (["eval", trained_run, "--val", store, "--out", tmp_path / "ev"], [store, tmp_path / "ev"]),
    }


@pytest.mark.parametrize("command", ["data-info", "train", "eval"])
@pytest.mark.parametrize("case", list(CASES))
def test_garbage_document_boundaries_are_refused(case, command, tiny_store, trained_run, tmp_path,
                                                  assert_user_error):
    store = tmp_path / "store"
    shutil.copytree(tiny_store, store)
    damage, needles = CASES[case]
    damage(store)
    argv, watch = _commands(store, tmp_path, trained_run)[command]
    assert_user_error(argv, *needles, "tinylm prepare", watch=watch)


def test_a_torn_teacher_cache_entry_is_recomputed(tmp_path, caplog):
    """The distill teachers' cache is a cache: an entry torn by a crash is recomputed, not a traceback."""
    import torch

    from tinylm.methods.teacher_cache import TeacherCache

    key = {"top_k": 2, "teachers": ["a"]}
    cache = TeacherCache(tmp_path, key, torch.device("cpu"))
    ids = torch.arange(6).view(2, 3)
    cache.put(4, 0, ids, torch.randn(2, 3, 2), torch.randint(9, (2, 3, 2)))
    cache.flush()
    entry = cache._file(4)
    entry.write_bytes(entry.read_bytes()[:40])
    assert TeacherCache(tmp_path, key, torch.device("cpu")).lookup(4, 0, ids) is None
    assert "unreadable" in caplog.text
