"""Encoder batches: one document per row, wrapped as BERT does ([CLS] ... [SEP]) and padded.

The tiny-LM paper trains BERT-style encoders on 128-token paragraphs; windows that cross document
borders would teach an encoder nothing about either. Documents longer than the row are split into
consecutive pieces (or truncated), so no text is silently lost. Like the window samplers, batch p
is a pure function of (seed, p), so resume and data parallelism work the same way.
"""

from __future__ import annotations

import numpy as np
import torch

from tinylm.data.samplers import PositionalSampler, rng_for
from tinylm.errors import UserError

_TAG_DOCUMENTS = 5


class PaddedDocuments(PositionalSampler):
    """Yields ``(input_ids, attention_mask)``, both LongTensor[batch_size, T].

    ``source`` is a ``TokenStore`` (tokens, boundaries and special ids come from it) or a token
    array, in which case pass ``boundaries`` (document offsets) and the special ids yourself.
    T is ``max_len`` (``pad_to="max_len"``, fixed shapes) or the batch's longest row (``"longest"``).
    """

    def __init__(self, source, split: str = "train", max_len: int = 128, batch_size: int = 32, seed: int = 0,
                 rank: int = 0, world_size: int = 1, *, boundaries=None, pad_id: int | None = None,
                 cls_id: int | None = None, sep_id: int | None = None, separator_id: int | None = None,
                 long_documents: str = "split", shuffle: bool = True, pad_to: str = "max_len"):
        super().__init__(batch_size, seed, rank, world_size)
        if hasattr(source, "split") and hasattr(source, "documents"):  # a TokenStore
            specials = source.special_ids
            tokens, boundaries = source.split(split), np.asarray(source.documents(split))
            separator_id = source.separator_id if separator_id is None else separator_id
            cls_id = specials.get("cls") if cls_id is None else cls_id
            sep_id = specials.get("sep") if sep_id is None else sep_id
            if pad_id is None:  # decoder tokenizers have no pad: any id works, the mask hides it
                pad_id = specials.get("pad", specials.get("eos", 0))
        elif boundaries is None:
            raise UserError("PaddedDocuments over a token array needs boundaries= (document offsets)")
        if long_documents not in ("split", "truncate") or pad_to not in ("max_len", "longest"):
            raise UserError("long_documents must be 'split' or 'truncate' and pad_to 'max_len' or 'longest'")
        self.tokens, self.max_len, self.shuffle, self.pad_to = tokens, int(max_len), shuffle, pad_to
        self.cls_id, self.sep_id, self.pad_id = cls_id, sep_id, 0 if pad_id is None else int(pad_id)
        self.budget = self.max_len - (cls_id is not None) - (sep_id is not None)
        if self.budget < 1:
            raise UserError(f"max_len {max_len} leaves no room for text beside [CLS]/[SEP]; use 128")
        self.item_starts, self.item_lengths = _pieces(tokens, np.asarray(boundaries, dtype=np.int64),
                                                      separator_id, self.budget, long_documents == "split")
        if len(self.item_starts) == 0:
            raise UserError(f"split {split!r} holds no documents; prepare more text or another split")

    @property
    def items_per_epoch(self) -> int:
        return len(self.item_starts)

    def items_at(self, position: int) -> np.ndarray:
        """Indices (into ``item_starts``) of this rank's rows of batch ``position``."""
        return self.global_items_at(position)[self.rank :: self.world_size]

    def global_items_at(self, position: int) -> np.ndarray:
        """Indices (into ``item_starts``) of every rank's rows of batch ``position``."""
        k = self.items_per_epoch
        samples = int(position) * self.global_rows + np.arange(self.global_rows, dtype=np.int64)
        epochs, index = np.divmod(samples, k)
        items = index.copy()
        if self.shuffle:
            for epoch in np.unique(epochs):
                rows = epochs == epoch
                items[rows] = rng_for(self.seed, _TAG_DOCUMENTS, int(epoch)).permutation(k)[index[rows]]
        return items

    def batch_at(self, position: int) -> tuple[torch.Tensor, torch.Tensor]:
        items = self.items_at(position)
        rows = [self._row(self.item_starts[i], self.item_lengths[i]) for i in items]
        width = self.max_len if self.pad_to == "max_len" else max(len(r) for r in rows)
        input_ids = np.full((len(rows), width), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(rows), width), dtype=np.int64)
        for j, row in enumerate(rows):
            input_ids[j, : len(row)] = row
            mask[j, : len(row)] = 1
        return torch.from_numpy(input_ids), torch.from_numpy(mask)

    def _row(self, start: int, length: int) -> np.ndarray:
        body = np.asarray(self.tokens[start : start + length], dtype=np.int64)
        parts = ([[self.cls_id]] if self.cls_id is not None else []) + [body]
        if self.sep_id is not None:
            parts.append([self.sep_id])
        return np.concatenate(parts)


def _pieces(tokens, offsets: np.ndarray, separator_id: int | None, budget: int, split_long: bool):
    """(start, length) of every row: documents without their trailing separator, cut to ``budget``."""
    starts, ends = offsets[:-1], offsets[1:].copy()
    if separator_id is not None and len(ends):
        nonempty = ends > starts
        last = np.zeros(len(ends), dtype=bool)
        last[nonempty] = np.asarray(tokens[ends[nonempty] - 1]) == separator_id
        ends[last] -= 1
    lengths = ends - starts
    keep = lengths > 0
    starts, lengths = starts[keep], lengths[keep]
    if not split_long:
        return starts, np.minimum(lengths, budget)
    n_pieces = -(-lengths // budget)
    first = np.repeat(np.cumsum(n_pieces) - n_pieces, n_pieces)
    within = np.arange(int(n_pieces.sum()), dtype=np.int64) - first
    piece_starts = np.repeat(starts, n_pieces) + within * budget
    piece_lengths = np.minimum(budget, np.repeat(starts + lengths, n_pieces) - piece_starts)
    return piece_starts, piece_lengths
