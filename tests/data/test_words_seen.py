"""Words per document in token stores, and the words a window of tokens holds (BabyLM's count)."""

import json

import numpy as np
import pytest

from tinylm.data import TokenStore, prepare_store
from tinylm.data.words_seen import SCALE, WordsSeen
from tinylm.errors import UserError


@pytest.fixture(scope="module")
def lines(book):
    """Documents (one per line) with uneven whitespace: tabs, runs of spaces, a leading space."""
    raw = [ln for ln in book("AliceInWonderland").splitlines() if ln.strip()][:400]
    return [(" " if i % 7 == 0 else "") + ln.replace(" ", "  " if i % 3 == 0 else " ").replace("e ", "e\t")
            for i, ln in enumerate(raw)]


@pytest.fixture(scope="module")
def line_store(tmp_path_factory, lines):
    """Every line a training document (the val split comes from a separate file, so no line is held out)."""
    root = tmp_path_factory.mktemp("words")
    (root / "train.txt").write_text("\n".join(lines) + "\n")
    (root / "val.txt").write_text("A small validation text of a few words.\n" * 20)
    return prepare_store([str(root / "train.txt")], "gpt2", root / "store", val_files=[str(root / "val.txt")],
                         docs="line")


def test_store_counts_whitespace_words_of_each_document(line_store, lines):
    words = np.asarray(line_store.document_words("train"))
    assert words.tolist() == [len(ln.split()) for ln in lines]
    assert line_store.num_words("train") == sum(len(ln.split()) for ln in lines)


def test_bundled_book_total_is_a_direct_count(tiny_store, book):
    store = TokenStore.open(tiny_store)
    assert store.meta["counts"]["words"] == len(book("AliceInWonderland")[:120_000].split())


def test_windows_of_whole_documents_count_their_words_exactly(line_store, lines):
    counter = WordsSeen.of_store(line_store)
    offsets = np.asarray(line_store.documents("train"))
    cumulative = np.cumsum([0] + [len(ln.split()) for ln in lines])
    assert counter.at(offsets).tolist() == (cumulative * SCALE).tolist()
    # windows that tile the stream telescope: exact whatever the cuts
    cuts = np.unique(np.r_[0, np.random.default_rng(0).integers(0, offsets[-1], 50), offsets[-1]])
    assert counter.between(cuts[:-1], cuts[1:]) == cumulative[-1] * SCALE


def test_a_cut_document_counts_its_part_prorated_by_tokens(line_store, lines):
    counter = WordsSeen.of_store(line_store)
    offsets = np.asarray(line_store.documents("train"))
    d = int(np.argmax(np.diff(offsets)))  # the longest line
    body = offsets[d + 1] - offsets[d] - 1  # its text's tokens (the EOS after it carries no words)
    half = offsets[d] + body // 2
    seen = counter.between([offsets[d]], [half]) / SCALE
    assert seen == pytest.approx(len(lines[d].split()) * (body // 2) / body, abs=1e-5)
    # the separator itself: no words
    assert counter.between([offsets[d + 1] - 1], [offsets[d + 1]]) == 0


def test_a_store_without_word_counts_still_loads_and_says_so(tmp_path, line_store):
    import shutil

    old = tmp_path / "old"
    shutil.copytree(line_store.path, old)
    meta = json.loads((old / "meta.json").read_text())
    for split in meta["splits"].values():
        (old / split.pop("words_file")).unlink()
    (old / "meta.json").write_text(json.dumps(meta))
    store = TokenStore.open(old)
    assert not store.has_words("train") and store.num_words("train") is None
    assert WordsSeen.of_store(store) is None
    with pytest.raises(UserError, match="does not count words"):
        store.document_words("train")


def test_an_mlm_epoch_counts_every_word_of_the_split_once(tiny_bert_store):
    """Encoders read documents (long ones in pieces, without their [SEP]): one epoch is every word, exactly."""
    from tinylm.data.batches import training_batches
    from tinylm.train.recipe import recipe_from_dict

    store = TokenStore.open(tiny_bert_store)
    data = recipe_from_dict({"data": {"store": str(tiny_bert_store), "sampler": "mlm", "seq_len": 32},
                             "model": {"name": "bert-1"}}).data
    batches = training_batches(store, data, batch_size=1)
    epoch = batches.documents.items_per_epoch
    assert sum(map(batches._words_at, range(epoch))) == store.num_words("train") * SCALE
