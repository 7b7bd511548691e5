"""From token stores to batches: `{"input_ids", "labels"[, "attention_mask"]}`, for training and validation.

Decoders read windows of seq_len + 1 tokens (inputs are the first seq_len, targets the last);
encoders read padded documents through the MLM collator. Both keep their position in a small
state dict, so a resumed run continues the identical stream.

Both also count the words they have handed out (`words_seen`, in `tinylm.data.words_seen`'s fixed-point
units; None when the store does not count words): the words of every row of the *global* batch (all
processes together, as `run.tokens`), each decoder row being the seq_len + 1 tokens it reads, each
encoder row the document text it holds. The count is kept in the state dict; an older checkpoint
without it gets it recomputed from the position (every batch is a pure function of its position).

The validation set is drawn here too, with the same samplers and collator, from the store's `val`
split and its own seed: a pure function of (store, data settings, count, seed), so the training
loop and `tinylm eval` build the very same windows without either importing the other. `data`
is anything with the recipe's data-section fields (`sampler`, `seq_len`, `seed`, `mlm_probability`).
"""

from __future__ import annotations

import torch

from tinylm.data.mlm import MLMCollator
from tinylm.data.padded_documents import PaddedDocuments
from tinylm.data.samplers import RandomShiftChunks, RandomWindows, SequentialEpochs, fixed_windows
from tinylm.data.words_seen import WordsSeen
from tinylm.errors import UserError

DECODER_SAMPLERS = {"windows": RandomWindows, "chunks": RandomShiftChunks, "epochs": SequentialEpochs}


class _CountsWords:
    """Words handed out so far, carried in the state dict beside the sampler's position."""

    counter: WordsSeen | None = None
    words_seen: int | None = None

    def _count(self, position: int) -> None:
        if self.counter is not None:
            self.words_seen += self._words_at(position)

    def _words_at(self, position: int) -> int:
        raise NotImplementedError

    def batch_at(self, position: int) -> dict:
        """The batch at ``position``, a pure function of (seed, position, rank): the source does not move."""
        raise NotImplementedError

    @property
    def position(self) -> int:
        return self.source.position

    def advance(self) -> None:
        """Count the batch at the current position as handed out (its words) and move past it."""
        self._count(self.source.position)
        self.source.position += 1

    def next_batch(self) -> dict:
        batch = self.batch_at(self.source.position)
        self.advance()
        return batch

    def state_dict(self) -> dict:
        state = self.source.state_dict()
        if self.words_seen is not None:
            state["words_seen"] = int(self.words_seen)
        return state

    def load_state_dict(self, state: dict) -> None:
        state = dict(state)
        words = state.pop("words_seen", None)
        self.source.load_state_dict(state)
        if self.counter is not None:  # a checkpoint written before words were counted: count them again
            self.words_seen = int(words) if words is not None else sum(map(self._words_at, range(self.source.position)))


class WindowBatches(_CountsWords):
    """Causal LM batches from a sampler of (B, T+1) windows."""

    def __init__(self, sampler, counter: WordsSeen | None = None):
        self.sampler = self.source = sampler
        self.counter, self.words_seen = counter, (0 if counter is not None else None)

    def batch_at(self, position: int) -> dict:
        w = self.sampler.batch_at(position)
        return {"input_ids": w[:, :-1], "labels": w[:, 1:]}

    def _words_at(self, position: int) -> int:
        starts = self.sampler._global_starts(int(position))
        return self.counter.between(starts, starts + self.sampler.seq_len + 1)


class MLMBatches(_CountsWords):
    """Masked-LM batches: padded documents, 15% selected (80/10/10), labels -100 elsewhere.

    The collator's draws depend on the batch position only, so the documents' position is all the state.
    """

    def __init__(self, documents, collator, counter: WordsSeen | None = None):
        self.documents = self.source = documents
        self.collator = collator
        self.counter, self.words_seen = counter, (0 if counter is not None else None)

    def batch_at(self, position: int) -> dict:
        input_ids, attention_mask = self.documents.batch_at(position)
        masked, labels = self.collator(input_ids, position, attention_mask)
        return {"input_ids": masked, "labels": labels, "attention_mask": attention_mask}

    def _words_at(self, position: int) -> int:
        items = self.documents.global_items_at(int(position))
        starts = self.documents.item_starts[items]
        return self.counter.between(starts, starts + self.documents.item_lengths[items])


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


def training_batches(store, data, batch_size: int, rank: int = 0, world: int = 1, count_words: bool = True):
    """This rank's training batches; ``count_words=False`` skips the word counter (a prefetch worker's copy)."""
    counter = WordsSeen.of_store(store, "train") if count_words else None
    if data.sampler == "mlm":
        return MLMBatches(*_mlm_parts(store, "train", data, batch_size, data.seed, rank, world), counter)
    sampler = DECODER_SAMPLERS[data.sampler](store.split("train"), data.seq_len, batch_size, data.seed,
                                             rank=rank, world_size=world)
    return WindowBatches(sampler, counter)


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


def to_device(batch: dict, device: torch.device) -> dict:
    """To the device without a host sync: from pinned memory a CUDA copy is truly asynchronous."""
    if device.type == "cuda":
        return {k: (v if v.is_pinned() else v.pin_memory()).to(device, non_blocking=True) for k, v in batch.items()}
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}
