"""Reading corpora: paths, directories, globs, compression, CSV/JSONL fields, datasets."""

from __future__ import annotations

import bz2
import gzip
import json

import pytest

from tinylm.data import prepare_store
from tinylm.data.sources import resolve_sources
from tinylm.errors import UserError


def _texts(store, split="train"):
    tokens, offsets = store.split(split), store.documents(split)
    tok = store.tokenizer
    return [tok.decode(tokens[offsets[i]:offsets[i + 1]].tolist()) for i in range(len(offsets) - 1)]


def test_directories_and_globs_are_sorted_and_skip_hidden_files(tmp_path):
    (tmp_path / "b.txt").write_text("b")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.txt").write_text("a")
    (tmp_path / ".hidden").write_text("h")
    names = [s.name for s in resolve_sources([tmp_path])]
    assert names == [str(tmp_path / "b.txt"), str(tmp_path / "sub" / "a.txt")]
    assert [s.name for s in resolve_sources([str(tmp_path / "**" / "*.txt")])] == sorted(names)
    assert len(resolve_sources([tmp_path / "b.txt", tmp_path])) == 2  # a file named twice is read once


def test_missing_paths_and_empty_globs_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        resolve_sources([tmp_path / "nope.txt"])
    with pytest.raises(UserError, match="no files match"):
        resolve_sources([str(tmp_path / "*.txt")])


def test_gzip_bz2_and_plain_give_the_same_documents(tmp_path, book):
    raw = book("TheAdventuresOfTomSawyer").encode("utf-8")[:30_000]
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "a.txt").write_bytes(raw)
    (tmp_path / "gz").mkdir()
    (tmp_path / "gz" / "a.txt.gz").write_bytes(gzip.compress(raw))
    (tmp_path / "bz").mkdir()
    (tmp_path / "bz" / "a.txt.bz2").write_bytes(bz2.compress(raw))
    stores = [prepare_store([tmp_path / d], "gpt2", tmp_path / f"s-{d}", val_fraction=0, workers=0)
              for d in ("plain", "gz", "bz")]
    bins = {(s.path / "train.bin").read_bytes() for s in stores}
    assert len(bins) == 1
    assert stores[1].meta["sources"][0]["sha256"] != stores[0].meta["sources"][0]["sha256"]  # hash of the file as stored


def test_csv_and_jsonl_read_the_named_field(tmp_path):
    (tmp_path / "a.csv").write_text('id,body\n1,"first, with comma"\n2,"second\nspans lines"\n3,\n')
    (tmp_path / "b.jsonl").write_text(json.dumps({"body": "third"}) + "\n\n" + json.dumps({"body": None}) + "\n")
    store = prepare_store([tmp_path / "a.csv", tmp_path / "b.jsonl"], "gpt2", tmp_path / "s", text_field="body",
                          val_fraction=0, eos_between_docs=False, workers=0)
    assert _texts(store) == ["first, with comma", "second\nspans lines", "third"]
    assert store.meta["cleaning"]["empty_documents_dropped"] == 2
    assert store.meta["separator"]["token_id"] is None


def test_headerless_csv_by_column_number(tmp_path, make_agnews_csv):
    rows = make_agnews_csv(tmp_path / "ag.csv", per_label=5, seed=1)  # no header: "class","title","description"
    assert rows[0][0] != 2  # a first row with a cell "2" is taken for a header naming the column (sources.py)
    store = prepare_store([tmp_path / "ag.csv"], "gpt2", tmp_path / "s", text_field="2", val_fraction=0, workers=0)
    assert store.meta["counts"]["documents"] == 20
    assert _texts(store) == [description for _, _, description in rows]  # column 2 counted from 0, first row kept


def test_csv_without_the_field_names_the_columns(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "utterances.csv").write_text("text,transcript_id,age_in_months,bucket\n"
                                         "where's the ball,1,24,0\nthat's a big dog,1,24,0\n")
    with pytest.raises(UserError, match=r"no column 'body' \(columns: text, transcript_id, age_in_months, bucket\); "
                                        "check --text-field"):
        prepare_store([data / "utterances.csv"], "gpt2", tmp_path / "s", text_field="body", workers=0)
    assert list(tmp_path.iterdir()) == [data]
    store = prepare_store([data / "utterances.csv"], "gpt2", tmp_path / "s", val_fraction=0, workers=0)
    assert _texts(store) == ["where's the ball", "that's a big dog"]  # `text` is the default field


def test_jsonl_record_without_the_field(tmp_path):
    (tmp_path / "a.jsonl").write_text('{"text": "fine"}\n{"other": 1}\n')
    with pytest.raises(UserError, match="line 2 has no field 'text'"):
        prepare_store([tmp_path / "a.jsonl"], "gpt2", tmp_path / "s", workers=0)


def test_binary_file_is_refused(tmp_path):
    (tmp_path / "x.txt").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))
    with pytest.raises(UserError, match="looks like a binary file"):
        prepare_store([tmp_path / "x.txt"], "gpt2", tmp_path / "s", workers=0)


def test_hf_dataset_from_a_local_file(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "cache"))
    pytest.importorskip("datasets")
    data = tmp_path / "ds"
    data.mkdir()
    (data / "part.jsonl").write_text("".join(json.dumps({"story": f"Story {i} is short."}) + "\n" for i in range(30)))
    store = prepare_store([f"hf:{data}@train"], "gpt2", tmp_path / "s", text_field="story", val_fraction=0,
                          workers=0)
    assert store.meta["counts"]["documents"] == 30
    assert _texts(store)[3] == "Story 3 is short."
    assert store.meta["sources"][0]["fingerprint"]


def test_truncated_or_fake_compressed_files_are_user_errors(tmp_path):
    text = " ".join(str(i * 7919 % 100_003) for i in range(50_000)).encode()
    (tmp_path / "cut.txt.gz").write_bytes(gzip.compress(text)[:5_000])
    with pytest.raises(UserError, match="cut.txt.gz .*valid .gz file"):
        prepare_store([tmp_path / "cut.txt.gz"], "gpt2", tmp_path / "s", workers=0)
    (tmp_path / "fake.txt.bz2").write_text("not compressed at all")
    with pytest.raises(UserError, match="fake.txt.bz2"):
        prepare_store([tmp_path / "fake.txt.bz2"], "gpt2", tmp_path / "s2", workers=0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cut.txt.gz", "fake.txt.bz2"]
