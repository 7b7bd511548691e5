"""Tokenizers: the shipped hub files load offline and agree with the hub; trained ones have their specials."""

from __future__ import annotations

import pytest

from tinylm.data.tokenizer import load_tokenizer, parse_trainable, special_ids, train_tokenizer, vocab_size
from tinylm.errors import UserError

CORPORA = ("gutenberg/AliceInWonderland.txt", "tinystories/tinystories_val.txt", "german/grimm-1.txt",
           "french/verne-deux-ans.txt", "wikitext2/valid.txt", "tinyshakespeare/input.txt")
# Text no tokenizer here is trained on: accents, ligatures, other scripts, emoji, odd whitespace.
UNSEEN = ("« Le cœur a ses raisons » — déjà vu, naïve façade, Œuvre\n"
          "Ελληνικά, русский, 日本語のテキスト, 한국어, עברית, العربية\n"
          "tabs\tand  double  spaces, a non-breaking\u00a0space, ‘curly’ “quotes”, 🙂🚀, x² ≤ ∞\r\n")


def _sample(shared_data, rel, n=40_000):
    return (shared_data / "corpora" / rel).read_bytes()[:n].decode("utf-8", "ignore")


@pytest.fixture(scope="module")
def samples(book, fixtures) -> dict[str, str]:
    """Texts the round trips run over: two bundled books, the German fixture and UNSEEN."""
    return {"alice": book("AliceInWonderland")[:40_000], "sawyer": book("TheAdventuresOfTomSawyer")[-40_000:],
            "grimm": (fixtures / "german" / "grimm-2-head.txt").read_text(encoding="utf-8"), "unseen": UNSEEN}


@pytest.fixture(scope="module")
def peter_pan_paragraphs(book) -> list[str]:
    """A tokenizer-training text: the paragraphs of the first 200,000 characters of the bundled Peter Pan."""
    return book("PeterPan")[:200_000].split("\n\n")


def test_gpt2_from_shipped_files_matches_the_hub():
    tok = load_tokenizer("gpt2")
    assert tok.encode("Hello world").ids == [15496, 995]
    assert tok.encode("Hello world, the cat sat.").ids == [15496, 995, 11, 262, 3797, 3332, 13]
    assert vocab_size(tok) == 50257
    assert special_ids(tok) == {"bos": 50256, "eos": 50256}


def test_bert_is_rebuilt_from_vocab_txt_as_bert_does():
    tok = load_tokenizer("bert-base-uncased")
    assert tok.encode("Hello world, the cat sat.").ids == [101, 7592, 2088, 1010, 1996, 4937, 2938, 1012, 102]
    assert special_ids(tok) == {"pad": 0, "unk": 100, "cls": 101, "sep": 102, "mask": 103}
    assert vocab_size(tok) == 30522


def test_neox_has_its_added_tokens():
    tok = load_tokenizer("gpt-neox-20b")
    assert vocab_size(tok) == 50277
    assert special_ids(tok)["eos"] == 0 and special_ids(tok)["pad"] == 1
    assert load_tokenizer("EleutherAI/gpt-neox-20b").to_str() == tok.to_str()  # hub id, same files, no download


@pytest.mark.parametrize("name", ["gpt2", "gpt-neox-20b"])
def test_byte_level_tokenizers_round_trip(samples, name):
    tok = load_tokenizer(name)
    for key, text in samples.items():
        assert tok.decode(tok.encode(text).ids) == text, key


@pytest.mark.shared_data
@pytest.mark.parametrize("name", ["gpt2", "gpt-neox-20b"])
def test_byte_level_tokenizers_round_trip_the_shared_corpora(shared_data, name):
    tok = load_tokenizer(name)
    for rel in CORPORA:
        text = _sample(shared_data, rel)
        assert tok.decode(tok.encode(text).ids) == text, rel


def test_trained_bpe_has_babyllama_specials_and_round_trips(peter_pan_paragraphs, samples):
    tok = train_tokenizer("bpe:1000", iter(peter_pan_paragraphs))
    assert [tok.token_to_id(t) for t in ("<pad>", "<s>", "</s>")] == [0, 1, 2]
    assert special_ids(tok) == {"pad": 0, "bos": 1, "eos": 2}
    assert vocab_size(tok) == 1000
    for key, text in samples.items():  # byte-level: even German and other scripts it never saw round-trip
        assert tok.decode(tok.encode(text).ids) == text, key
    # it learnt the words of its text: a common one is one token (with its space), a German one is several
    assert len(tok.encode(" said").ids) == 1 and len(tok.encode(" Fischer").ids) > 1


def test_trained_bpe_is_deterministic(peter_pan_paragraphs):
    texts = peter_pan_paragraphs[: len(peter_pan_paragraphs) // 2]
    assert train_tokenizer("bpe:600", iter(texts)).to_str() == train_tokenizer("bpe:600", iter(texts)).to_str()


def test_trained_wordpiece_is_bert_like(peter_pan_paragraphs):
    tok = train_tokenizer("wordpiece:800", iter(peter_pan_paragraphs[: len(peter_pan_paragraphs) // 2]))
    ids = special_ids(tok)
    assert set(ids) == {"pad", "unk", "cls", "sep", "mask"}
    enc = tok.encode("The cat sat.")
    assert enc.ids[0] == ids["cls"] and enc.ids[-1] == ids["sep"]


@pytest.mark.parametrize("spec, fragment", [
    ("bpe:100", "bpe:259 or more"),
    ("wordpiece:5", "too small for its 5 special tokens"),
    ("bpe:lots", "malformed tokenizer spec"),
])
def test_bad_trainable_specs_name_the_fix(spec, fragment):
    with pytest.raises(UserError, match=fragment):
        parse_trainable(spec)


def test_spec_sizes_accept_k():
    assert parse_trainable("bpe:16k") == ("bpe", 16000)
    assert parse_trainable("gpt2") is None


def test_unknown_tokenizer_lists_the_choices():
    with pytest.raises(UserError, match="gpt2, bert-base-uncased, gpt-neox-20b"):
        load_tokenizer("gpt3")


def test_a_store_directory_is_a_tokenizer_path(gpt2_store):
    assert load_tokenizer(gpt2_store.path).encode("Hello world").ids == [15496, 995]
