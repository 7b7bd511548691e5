"""prepare_store: deterministic, streaming, split by document, never half-written."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tinylm.data import TokenStore, prepare_store
from tinylm.errors import UserError

STORE_FILES = ("meta.json", "tokenizer.json", "train.bin", "train.docs.npy", "train.words.npy", "val.bin",
               "val.docs.npy", "val.words.npy")


def _bytes(store_dir: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(Path(store_dir).iterdir())}


def test_same_seed_gives_byte_identical_stores_whatever_the_workers_and_pieces(tmp_path, gutenberg_files):
    a = prepare_store(gutenberg_files, "gpt2", tmp_path / "a", seed=3, workers=0)
    b = prepare_store(gutenberg_files, "gpt2", tmp_path / "b", seed=3, workers=2, piece_bytes=50_000)
    assert sorted(p.name for p in a.path.iterdir()) == sorted(STORE_FILES)
    assert _bytes(a.path) == _bytes(b.path)
    c = prepare_store(gutenberg_files, "gpt2", tmp_path / "c", seed=4, workers=0)
    assert (c.path / "train.bin").read_bytes() != (a.path / "train.bin").read_bytes()
    assert c.meta["counts"]["tokens"] == a.meta["counts"]["tokens"]  # same documents, other split


def test_store_contents_match_the_text(gpt2_store, gutenberg_files):
    meta = gpt2_store.meta
    assert meta["dtype"] == "uint16" and gpt2_store.split("train").dtype == np.dtype("<u2")
    assert meta["separator"] == {"eos_between_docs": True, "token_id": 50256, "token": "<|endoftext|>",
                                 "placement": "after every document"}
    assert [s["name"] for s in meta["sources"]] == [str(p.resolve()) for p in gutenberg_files]
    assert all(len(s["sha256"]) == 64 for s in meta["sources"])
    train, offsets = gpt2_store.split("train"), gpt2_store.documents("train")
    assert offsets[0] == 0 and offsets[-1] == len(train) == meta["splits"]["train"]["tokens"]
    assert (train[offsets[1:] - 1] == 50256).all()  # every document ends with EOS
    first = gpt2_store.tokenizer.decode(train[offsets[0]:offsets[1] - 1].tolist())
    assert first == "CHAPTER I. Down the Rabbit-Hole"
    splits = meta["splits"]
    total_docs = splits["train"]["documents"] + splits["val"]["documents"]
    assert 0.02 < splits["val"]["documents"] / total_docs < 0.08  # --val-fraction 0.05
    assert meta["counts"]["words"] == int(gpt2_store.document_words("train").sum()) + splits["val"]["words"]
    distinct = len(np.unique(np.concatenate([train, gpt2_store.split("val")])))
    assert meta["counts"]["distinct_tokens"] == distinct


def test_val_files_and_test_fraction(tmp_path, gutenberg_files):
    store = prepare_store(gutenberg_files[:1], "gpt2", tmp_path / "s", val_files=gutenberg_files[1:],
                          test_fraction=0.1, workers=0)
    assert store.splits == ["train", "val", "test"]
    assert store.meta["options"]["val_fraction"] == 0.0
    roles = [(s["name"].rsplit("/", 1)[1], s["role"]) for s in store.meta["sources"]]
    assert roles == [("AliceInWonderland.txt", "corpus"), ("PeterPan.txt", "val")]
    text = store.tokenizer.decode(store.split("val")[:200].tolist())
    assert "Peter" in text or "Wendy" in text or "children" in text
    assert store.meta["splits"]["test"]["documents"] > 0


def test_a_val_file_inside_a_source_directory_is_not_trained_on(tmp_path):
    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "train.txt").write_text("a b c\n\nd e f\n")
    (tmp_path / "corpus" / "dev.txt").write_text("g h i\n")
    store = prepare_store([tmp_path / "corpus"], "gpt2", tmp_path / "s", val_files=[tmp_path / "corpus" / "dev.txt"],
                          workers=0)
    assert store.meta["splits"]["train"]["documents"] == 2 and store.meta["splits"]["val"]["documents"] == 1


def test_dedup_and_invalid_utf8_are_counted_not_fatal(tmp_path):
    (tmp_path / "a.txt").write_bytes(b"same para\n\nother \xff\xfe para\n\nsame para\n\n\x00x")
    with pytest.raises(UserError, match="binary"):  # NUL in the first 8 KiB: refused
        prepare_store([tmp_path / "a.txt"], "gpt2", tmp_path / "s", workers=0)
    (tmp_path / "a.txt").write_bytes(b"same para\n\nother \xff\xfe para\n\nsame para\n\nlast\x1b")
    store = prepare_store([tmp_path / "a.txt"], "gpt2", tmp_path / "s", dedup=True, val_fraction=0, workers=0)
    cleaning = store.meta["cleaning"]
    assert cleaning["duplicate_documents_dropped"] == 1
    assert cleaning["invalid_utf8_replaced"] == 2 and store.meta["sources"][0]["invalid_utf8_replaced"] == 2
    assert cleaning["control_chars_removed"] == 1
    assert store.meta["splits"]["train"]["documents"] == 3


def test_trained_tokenizer_never_sees_val(tmp_path):
    (tmp_path / "train.txt").write_text("\n\n".join(f"the cat sat on mat number {i}." for i in range(300)))
    (tmp_path / "val.txt").write_text("\n\n".join("zyxwvut qponmlk" for _ in range(300)))
    store = prepare_store([tmp_path / "train.txt"], "bpe:400", tmp_path / "s", val_files=[tmp_path / "val.txt"],
                          workers=0)
    vocab = store.tokenizer.get_vocab()
    assert store.meta["tokenizer"]["name"] == "bpe:400"
    assert "Ġcat" in vocab
    assert not any("zyx" in t or "qpon" in t for t in vocab)  # would be merged had it trained on val
    assert store.special_ids == {"pad": 0, "bos": 1, "eos": 2}
    offsets = store.documents("val")
    assert store.tokenizer.decode(store.split("val")[offsets[0]:offsets[1]].tolist()) == "zyxwvut qponmlk"


def test_trained_store_is_deterministic(tmp_path, gutenberg_files):
    a = prepare_store(gutenberg_files[:1], "bpe:500", tmp_path / "a", workers=0)
    b = prepare_store(gutenberg_files[:1], "bpe:500", tmp_path / "b", workers=2)
    assert _bytes(a.path) == _bytes(b.path)


def test_dtype_choices(tmp_path, gutenberg_files):
    store = prepare_store(gutenberg_files[:1], "gpt2", tmp_path / "s", dtype="uint32", workers=0)
    assert store.split("train").dtype == np.dtype("<u4")
    assert (tmp_path / "s" / "train.bin").stat().st_size == 4 * store.num_tokens("train")


def test_uint16_refused_for_a_vocabulary_that_does_not_fit(tmp_path, gutenberg_files):
    from tokenizers import Tokenizer, models, pre_tokenizers

    tok = Tokenizer(models.WordLevel({f"w{i}": i for i in range(70_000)} | {"[UNK]": 70_000}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    with pytest.raises(UserError, match="uint16 holds ids below 65,536 but tokenizer custom has 70,001 ids"):
        prepare_store(gutenberg_files[:1], tok, tmp_path / "s", dtype="uint16", workers=0)
    assert list(tmp_path.iterdir()) == []
    store = prepare_store(gutenberg_files[:1], tok, tmp_path / "s", workers=0)
    assert store.meta["dtype"] == "uint32"


def test_an_interrupted_prepare_leaves_nothing(tmp_path, gutenberg_files):
    def interrupt(event):
        if event.tokens > 10_000:
            raise KeyboardInterrupt

    for workers in (0, 2):
        with pytest.raises(KeyboardInterrupt):
            prepare_store(gutenberg_files, "gpt2", tmp_path / "s", workers=workers, piece_bytes=20_000,
                          progress=interrupt)
        assert list(tmp_path.iterdir()) == []


def test_existing_output_needs_force_and_force_only_replaces_stores(tmp_path, gutenberg_files):
    prepare_store(gutenberg_files[:1], "gpt2", tmp_path / "s", workers=0)
    with pytest.raises(UserError, match="already exists"):
        prepare_store(gutenberg_files[:1], "gpt2", tmp_path / "s", workers=0)
    store = prepare_store(gutenberg_files[:1], "gpt2", tmp_path / "s", workers=0, overwrite=True, seed=9)
    assert store.meta["options"]["seed"] == 9
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "mine.txt").write_text("keep me")
    with pytest.raises(UserError, match="not a token store"):
        prepare_store(gutenberg_files[:1], "gpt2", tmp_path / "notes", workers=0, overwrite=True)
    assert (tmp_path / "notes" / "mine.txt").read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes", "s"]


def test_stale_temp_dirs_of_dead_processes_are_removed(tmp_path, gutenberg_files):
    stale = tmp_path / ".s.tmp-999999999-abcd"  # no such pid
    stale.mkdir()
    prepare_store(gutenberg_files[:1], "gpt2", tmp_path / "s", workers=0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s"]


def test_opening_missing_or_damaged_stores_names_prepare(tmp_path, gpt2_store):
    with pytest.raises(UserError, match="tinylm prepare"):
        TokenStore.open(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no meta.json.*tinylm prepare"):
        TokenStore.open(tmp_path / "empty")
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(gpt2_store.path, broken)
    with open(broken / "train.bin", "r+b") as f:
        f.truncate(100)
    with pytest.raises(UserError, match="corrupt.*tinylm prepare"):
        TokenStore.open(broken)
    (broken / "meta.json").write_text("{not json")
    with pytest.raises(UserError, match="corrupt.*tinylm prepare"):
        TokenStore.open(broken)
    meta = json.loads((gpt2_store.path / "meta.json").read_text())
    del meta["splits"]["train"]["tokens"]
    (broken / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(UserError, match="incomplete or corrupt"):
        TokenStore.open(broken)
    with pytest.raises(UserError, match="no 'test' split"):
        gpt2_store.split("test")
