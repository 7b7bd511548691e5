"""Nested subsets by word count (BabyLlama-2 appendix B)."""

from __future__ import annotations

import numpy as np
import pytest

from tinylm.data import TokenStore, nested_subsets, write_subset
from tinylm.data.subsets import parse_words
from tinylm.errors import UserError


def test_subsets_are_nested_and_hold_their_budget(gpt2_store):
    words = np.asarray(gpt2_store.document_words("train"))
    budgets = [5_000, 10_000, 40_000]
    subsets = nested_subsets(gpt2_store, budgets, seed=0)
    for small, large in zip(subsets, subsets[1:]):
        assert set(small) <= set(large)
    for budget, docs in zip(budgets, subsets):
        assert budget <= words[docs].sum() < budget + words.max()
    other = nested_subsets(gpt2_store, budgets, seed=1)
    assert set(other[0]) != set(subsets[0])
    with pytest.raises(UserError, match="only"):
        nested_subsets(gpt2_store, [10**9])


def test_write_subset_makes_a_store_of_those_documents(gpt2_store, tmp_path):
    sub = write_subset(gpt2_store, 10_000, tmp_path / "10k", seed=0)
    (docs,) = nested_subsets(gpt2_store, [10_000], seed=0)
    offsets, tokens = gpt2_store.documents("train"), gpt2_store.split("train")
    expected = np.concatenate([tokens[offsets[d]:offsets[d + 1]] for d in docs])
    assert np.array_equal(sub.split("train"), expected)
    assert np.array_equal(sub.split("val"), gpt2_store.split("val"))
    assert sub.meta["subset"]["words"] == 10_000 and sub.meta["splits"]["train"]["documents"] == len(docs)
    assert TokenStore.open(sub.path).num_tokens("train") == len(expected)


def test_parse_words():
    assert [parse_words(t) for t in ("1M", "500k", "2000", "1.5m")] == [10**6, 500_000, 2000, 1_500_000]
    with pytest.raises(UserError):
        parse_words("lots")
