"""From token stores to the training loop's batches: `{"input_ids", "labels"[, "attention_mask"]}`.

Decoders read windows of seq_len + 1 tokens (inputs are the first seq_len, targets the last);
encoders read padded documents through the MLM collator. Both keep their position in a small
state dict, so a resumed run continues the identical stream.
"""

from __future__ import annotations

import torch

from tinylm.data import MLMCollator, PaddedDocuments, RandomShiftChunks, RandomWindows, SequentialEpochs
from tinylm.data import fixed_windows
from tinylm.errors import UserError

DECODER_SAMPLERS = {"windows": RandomWindows, "chunks": RandomShiftChunks, "epochs": SequentialEpochs}


class WindowBatches:
    """Causal LM batches from a sampler of (B, T+1) windows."""

    def __init__(self, sampler):
        self.sampler = sampler

    def next_batch(self) -> dict:
        w = self.sampler.next_batch()
        return {"input_ids": w[:, :-1], "labels": w[:, 1:]}

    def state_dict(self) -> dict:
        return self.sampler.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.sampler.load_state_dict(state)


class MLMBatches:
    """Masked-LM batches: padded documents, 15% selected (80/10/10), labels -100 elsewhere.

    The collator's draws depend on the batch position only, so the documents' position is all the state.
    """

    def __init__(self, documents, collator):
        self.documents, self.collator = documents, collator

    def next_batch(self) -> dict:
        position = self.documents.position
        input_ids, attention_mask = self.documents.next_batch()
        masked, labels = self.collator(input_ids, position, attention_mask)
        return {"input_ids": masked, "labels": labels, "attention_mask": attention_mask}

    def state_dict(self) -> dict:
        return self.documents.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.documents.load_state_dict(state)


def _mlm_parts(store, split: str, data, batch_size: int, seed: int, rank: int, world: int):
    specials = store.special_ids
    if "mask" not in specials or "pad" not in specials:
        raise UserError(f"token store {store.path} has no [MASK]/[PAD] tokens: prepare it with an encoder "
                        "tokenizer (bert-base-uncased or wordpiece:N) for `sampler: mlm`")
    docs = PaddedDocuments(store, split, max_len=data.seq_len, batch_size=batch_size, seed=seed,
                           rank=rank, world_size=world)
    collator = MLMCollator(store.vocab_size, specials["mask"], specials, mlm_probability=data.mlm_probability,
                           seed=seed, rank=rank, world_size=world, max_len=data.seq_len)
    return docs, collator


def training_batches(store, data, batch_size: int, rank: int = 0, world: int = 1):
    if data.sampler == "mlm":
        return MLMBatches(*_mlm_parts(store, "train", data, batch_size, data.seed, rank, world))
    sampler = DECODER_SAMPLERS[data.sampler](store.split("train"), data.seq_len, batch_size, data.seed,
                                             rank=rank, world_size=world)
    return WindowBatches(sampler)


def validation_batches(store, data, n_windows: int, batch_size: int, seed: int) -> list[dict]:
    """The fixed validation set: the same windows (or masked documents) for every run on a store."""
    if data.sampler == "mlm":
        docs, collator = _mlm_parts(store, "val", data, batch_size, seed, 0, 1)
        source = MLMBatches(docs, collator)
        return [source.next_batch() for _ in range(max(1, -(-n_windows // batch_size)))]
    val = store.split("val")
    if len(val) < data.seq_len + 1:
        raise UserError(f"token store {store.path} has {len(val)} validation tokens, fewer than one window of "
                        f"{data.seq_len + 1}: prepare it with a larger --val-fraction or lower data.seq_len")
    windows = fixed_windows(val, data.seq_len, n_windows, seed)
    return [{"input_ids": w[:, :-1], "labels": w[:, 1:]} for w in torch.split(windows, batch_size)]
