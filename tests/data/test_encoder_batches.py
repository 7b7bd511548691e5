"""Encoder batches: [CLS] document [SEP] rows, padded; MLM masking with BERT's proportions."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tinylm.data import MLMCollator, PaddedDocuments


def test_rows_are_whole_documents_wrapped_and_padded(bert_store):
    ids = bert_store.special_ids
    batches = PaddedDocuments(bert_store, "train", max_len=128, batch_size=16, seed=0)
    input_ids, mask = batches.next_batch()
    assert input_ids.shape == mask.shape == (16, 128)
    lengths = mask.sum(1)
    for row, n in zip(input_ids, lengths):
        assert row[0] == ids["cls"] and row[n - 1] == ids["sep"]
        assert (row[n:] == ids["pad"]).all()
        assert not (row[1 : n - 1] == ids["sep"]).any()  # the store's separators are not inside documents
    assert (mask[:, :1] == 1).all() and set(mask.unique().tolist()) == {0, 1}


def test_every_train_token_appears_once_per_epoch(bert_store):
    batches = PaddedDocuments(bert_store, "train", max_len=32, batch_size=8, seed=0)
    n_items = batches.items_per_epoch
    assert (batches.item_lengths <= 30).all()  # long paragraphs are split, not truncated
    seen = np.concatenate([batches.items_at(p) for p in range(n_items // 8)])
    assert len(np.unique(seen)) == len(seen)
    sep = bert_store.separator_id
    text_tokens = int((np.asarray(bert_store.split("train")) != sep).sum())
    assert int(batches.item_lengths.sum()) == text_tokens


def test_truncate_and_longest_padding(bert_store):
    b = PaddedDocuments(bert_store, "train", max_len=32, batch_size=8, long_documents="truncate", pad_to="longest")
    input_ids, mask = b.batch_at(0)
    assert input_ids.shape[1] == int(mask.sum(1).max()) <= 32
    assert b.items_per_epoch == bert_store.meta["splits"]["train"]["documents"]


def test_padded_documents_resume_and_ranks(bert_store):
    single = PaddedDocuments(bert_store, "train", batch_size=8, seed=2)
    stream = [single.next_batch() for _ in range(4)]
    resumed = PaddedDocuments(bert_store, "train", batch_size=8, seed=2)
    resumed.load_state_dict({"position": 2, "seed": 2})
    assert torch.equal(resumed.next_batch()[0], stream[2][0])
    rank1 = PaddedDocuments(bert_store, "train", batch_size=4, seed=2, rank=1, world_size=2)
    assert torch.equal(rank1.batch_at(3)[0], stream[3][0][1::2])


def _collator(store, **kw):
    ids = store.special_ids
    return MLMCollator(store.vocab_size, ids["mask"], ids, seed=0, **kw)


def test_mlm_proportions_hold_and_specials_are_never_selected(bert_store):
    ids = bert_store.special_ids
    batches = PaddedDocuments(bert_store, "train", max_len=128, batch_size=64, seed=0)
    collate = _collator(bert_store)
    eligible = selected = masked = randomized = kept = 0
    for position in range(40):
        input_ids, attention = batches.batch_at(position)
        inputs, labels = collate(input_ids, position, attention)
        special = torch.isin(input_ids, torch.tensor(list(ids.values())))
        sel = labels != -100
        assert not (sel & special).any() and not (sel & (attention == 0)).any()
        assert torch.equal(labels[sel], input_ids[sel])
        assert torch.equal(inputs[~sel], input_ids[~sel])  # nothing outside the selection changes
        eligible += int((~special & (attention == 1)).sum())
        selected += int(sel.sum())
        masked += int((inputs[sel] == ids["mask"]).sum())
        same = inputs[sel] == input_ids[sel]
        kept += int(same.sum())
        randomized += int((~same & (inputs[sel] != ids["mask"])).sum())
        assert not torch.isin(inputs[sel & (inputs != ids["mask"]) & (inputs != input_ids)],
                              torch.tensor(list(ids.values()))).any()  # random tokens are never specials
    n = selected
    assert eligible > 100_000
    assert abs(selected / eligible - 0.15) < 0.006  # ~5 standard deviations
    assert abs(masked / n - 0.8) < 0.015
    # "unchanged" also catches the rare random draw equal to the original token (1 in 30k)
    assert abs(kept / n - 0.1) < 0.012 and abs(randomized / n - 0.1) < 0.012


def test_mlm_is_deterministic_by_seed_position_and_rank(bert_store):
    batches = PaddedDocuments(bert_store, "train", max_len=64, batch_size=8, seed=0)
    input_ids, attention = batches.batch_at(0)
    collate = _collator(bert_store)
    a, b = collate(input_ids, 5, attention), collate(input_ids, 5, attention)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[1], collate(input_ids, 6, attention)[1])
    rank1 = _collator(bert_store, rank=1, world_size=2)
    assert torch.equal(rank1(input_ids[1::2], 5, attention[1::2])[1], a[1][1::2])


def test_mlm_needs_a_mask_token(gpt2_store):
    from tinylm.errors import UserError

    with pytest.raises(UserError, match="no \\[MASK\\] token"):
        MLMCollator(gpt2_store.vocab_size, gpt2_store.special_ids.get("mask"), gpt2_store.special_ids)
