"""Words of training data consumed, as the BabyLM challenge counts its 10M / 100M-word budgets.

BabyLM counts whitespace words of the source text (``len(text.split())`` per document, repeats
across epochs included) and asks for checkpoints at 1M, 2M, ... words seen. A sampler draws token
windows, not words, so each token of a document carries an equal share of the document's words:
a document of ``w`` words and ``b`` tokens of text gives each of those tokens ``w / b`` words (its
trailing separator, EOS or [SEP], carries none). The words of a window ``[s, e)`` are the sum of its
tokens' shares, so

* a window made of whole documents counts exactly their words (sequential epochs: after k whole
  documents the count is exactly the sum of their word counts);
* a window that cuts a document counts its part prorated by tokens (random windows, shifted chunks);
* overlapping windows (FORGETTER's random windows, with replacement) count every time they are read.

Counts are kept in fixed point (``SCALE`` units per word, whole numbers), so sums of windows that
tile the stream telescope exactly: no floating-point drift however long the run.
"""

from __future__ import annotations

import numpy as np

SCALE = 1 << 20  # fixed-point units per word


class WordsSeen:
    """Words (in ``SCALE`` units) before every token position of one split."""

    def __init__(self, tokens: np.ndarray, offsets: np.ndarray, words: np.ndarray, separator_id: int | None):
        self.offsets = np.asarray(offsets, dtype=np.int64)
        self.words = np.asarray(words, dtype=np.int64)
        self.before = np.concatenate([[0], np.cumsum(self.words)]).astype(np.int64)
        lengths = np.diff(self.offsets)
        body = lengths.copy()
        if separator_id is not None and len(body):
            nonempty = lengths > 0
            ends = self.offsets[1:][nonempty] - 1
            body[np.flatnonzero(nonempty)[np.asarray(tokens[ends]) == separator_id]] -= 1
        self.body = body
        self.base = self.before * SCALE  # at each document's first token: exact
        self.rate = self.words * SCALE / np.maximum(body, 1)  # per token of the document's text

    @classmethod
    def of_store(cls, store, split: str = "train") -> "WordsSeen | None":
        """The counter of a store's split; None when the store has no word counts (an older store)."""
        if not store.has_words(split):
            return None
        return cls(store.split(split), store.documents(split), store.document_words(split), store.separator_id)

    @property
    def total(self) -> int:
        """Words of the whole split (SCALE units)."""
        return int(self.before[-1]) * SCALE

    def at(self, positions) -> np.ndarray:
        """Words (SCALE units) of the tokens before each position, int64."""
        p = np.asarray(positions, dtype=np.int64)
        doc = np.searchsorted(self.offsets, p, side="right") - 1  # skips empty documents; the end: n_docs
        inside = np.minimum(doc, len(self.words) - 1)
        into = np.minimum(p - self.offsets[inside], self.body[inside])  # the separator's position: the whole text
        share = np.where(into == self.body[inside], self.words[inside] * SCALE,  # a document's whole text: exact
                         np.floor(into * self.rate[inside]).astype(np.int64))
        return self.base[doc] + np.where(doc < len(self.words), share, 0)

    def between(self, starts, ends) -> int:
        """Words (SCALE units) of the windows ``[starts[i], ends[i])`` together."""
        starts, ends = np.asarray(starts, dtype=np.int64), np.asarray(ends, dtype=np.int64)
        words = self.at(np.concatenate([starts, ends]))  # one pass over both ends
        return int(words[len(starts):].sum() - words[:len(starts)].sum())
