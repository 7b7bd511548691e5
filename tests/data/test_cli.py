"""`tinylm prepare` and `tinylm data`: bad input is one line and exit status 2, and leaves nothing behind."""

from __future__ import annotations

import json

import pytest


def _one_line_error(capsys, fragment: str) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("tinylm prepare: error:") and fragment in err[0], err[0]
    assert "Traceback" not in err[0]
    return err[0]


def _big_vocab_tokenizer(path):
    from tokenizers import Tokenizer, models, pre_tokenizers

    tok = Tokenizer(models.WordLevel({f"w{i}": i for i in range(70_000)} | {"[UNK]": 70_000}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.save(str(path))
    return path


def _case(tmp_path, name):
    """(sources, extra arguments, expected fragment) for each kind of bad input."""
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    if name == "missing":
        return [inputs / "nope.txt"], [], "does not exist"
    if name == "empty":
        (inputs / "empty.txt").write_text("\n\n   \n")
        return [inputs / "empty.txt"], [], "every document is empty"
    if name == "binary":
        (inputs / "model.bin").write_bytes(bytes(range(256)) * 10)
        return [inputs / "model.bin"], [], "binary"
    if name == "csv-field":
        (inputs / "a.csv").write_text("title,body\nx,y\n")
        return [inputs / "a.csv"], ["--text-field", "text"], "no column 'text' (columns: title, body)"
    if name == "small-vocab":
        (inputs / "a.txt").write_text("hello there")
        return [inputs / "a.txt"], ["--tokenizer", "bpe:100"], "bpe:259 or more"
    if name == "uint16":
        (inputs / "a.txt").write_text("w1 w2 w3")
        tok = _big_vocab_tokenizer(inputs / "big.json")
        return [inputs / "a.txt"], ["--tokenizer", tok, "--dtype", "uint16"], "use --dtype uint32"
    raise AssertionError(name)


@pytest.mark.parametrize("name", ["missing", "empty", "binary", "csv-field", "small-vocab", "uint16"])
def test_bad_input_is_one_line_exit_2_and_nothing_written(tmp_path, cli, capsys, name):
    sources, extra, fragment = _case(tmp_path, name)
    if "--tokenizer" not in extra:
        extra = ["--tokenizer", "gpt2", *extra]
    out = tmp_path / "out"
    assert cli("prepare", *sources, *extra, "--out", out, "--workers", "0") == 2
    _one_line_error(capsys, fragment)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["inputs"]  # no store, no temp dir


def test_binary_file_found_by_a_worker_is_still_one_line(tmp_path, cli, capsys):
    (tmp_path / "ok.txt").write_text("fine text\n\nmore")
    (tmp_path / "zz.txt").write_bytes(b"\x00\x01" * 100)
    assert cli("prepare", tmp_path / "ok.txt", tmp_path / "zz.txt", "--tokenizer", "gpt2", "--out",
               tmp_path / "out", "--workers", "2") == 2
    _one_line_error(capsys, "binary")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ok.txt", "zz.txt"]


def test_invalid_utf8_is_replaced_and_counted_not_fatal(tmp_path, cli, capsys):
    (tmp_path / "latin1.txt").write_bytes("Caf\xe9 cr\xe8me\n\nna\xefve".encode("latin-1"))
    assert cli("prepare", tmp_path / "latin1.txt", "--tokenizer", "gpt2", "--out", tmp_path / "s",
               "--val-fraction", "0") == 0
    assert "invalid utf8 replaced 3" in capsys.readouterr().out
    meta = json.loads((tmp_path / "s" / "meta.json").read_text())
    assert meta["cleaning"]["invalid_utf8_replaced"] == 3


def test_usage_mistakes_are_one_line_too(tmp_path, cli, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli("prepare", tmp_path, "--tokenizer", "gpt2", "--out", tmp_path / "s", "--docs", "sentence")
    assert exit_.value.code == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_prepare_then_info_and_subset(tmp_path, cli, capsys, gutenberg_files):
    assert cli("prepare", *gutenberg_files, "--tokenizer", "gpt2", "--out", tmp_path / "s", "--seed", "2") == 0
    out = capsys.readouterr().out
    assert out.startswith(f"wrote {tmp_path / 's'}:") and "tokens/s" in out
    assert cli("data", "info", tmp_path / "s") == 0
    text = capsys.readouterr().out
    assert "gpt2 (50,257 ids, uint16" in text and "train" in text and "val" in text
    assert cli("data", "info", tmp_path / "s", "--json") == 0
    info = json.loads(capsys.readouterr().out)
    meta = json.loads((tmp_path / "s" / "meta.json").read_text())
    assert info["counts"] == meta["counts"] and info["splits"]["train"]["tokens"] == meta["splits"]["train"]["tokens"]
    assert cli("data", "subset", tmp_path / "s", "--words", "20k", "5k", "--out", tmp_path / "subsets") == 0
    assert sorted(p.name for p in (tmp_path / "subsets").iterdir()) == ["20k", "5k"]


def test_data_info_on_a_non_store(tmp_path, cli, capsys):
    assert cli("data", "info", tmp_path) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "tinylm prepare" in err[0]


def test_shipped_corpus_needs_nothing_from_shared(tmp_path, cli, capsys):
    assert cli("prepare", "builtin:children", "--tokenizer", "gpt2", "--out", tmp_path / "s") == 0
    meta = json.loads((tmp_path / "s" / "meta.json").read_text())
    assert [s["name"] for s in meta["sources"]] == [
        "builtin:children/AliceInWonderland.txt.gz", "builtin:children/PeterPan.txt.gz",
        "builtin:children/TheAdventuresOfTomSawyer.txt.gz"]
    assert meta["counts"]["words"] > 100_000
