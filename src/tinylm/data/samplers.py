"""Batches of token windows from a token store, each batch a pure function of (seed, position).

Because nothing but ``position`` changes as batches are drawn, a run resumed from a checkpoint
(``load_state_dict``) continues the identical stream, and data-parallel ranks agree on the global
batch: the global batch at position p has ``batch_size * world_size`` rows and rank r takes rows
``r::world_size``, so N processes see exactly the batches one process would.

Every row is ``seq_len + 1`` tokens: inputs are ``batch[:, :-1]``, targets ``batch[:, 1:]``.
"""

from __future__ import annotations

import logging

import numpy as np
import torch

from tinylm.errors import UserError

logger = logging.getLogger(__name__)
# Distinct streams for distinct uses of the same seed (windows vs. offsets vs. validation).
_TAG_WINDOWS, _TAG_SHIFT, _TAG_SEQUENTIAL, _TAG_FIXED = 1, 2, 3, 4


def rng_for(seed: int, *key: int) -> np.random.Generator:
    """A generator that depends only on (seed, key): no state carried from call to call."""
    return np.random.default_rng([int(seed), *map(int, key)])


class PositionalSampler:
    """Position bookkeeping shared by every sampler: ``batch_at(p)`` is pure, ``next_batch`` advances."""

    def __init__(self, batch_size: int, seed: int = 0, rank: int = 0, world_size: int = 1):
        if batch_size < 1:
            raise UserError(f"batch_size must be at least 1, not {batch_size}")
        if not 0 <= rank < world_size:
            raise UserError(f"rank {rank} must be in [0, world_size={world_size})")
        if not isinstance(seed, (int, np.integer)) or seed < 0:
            raise UserError(f"seed must be a non-negative whole number, not {seed!r}")
        self.batch_size, self.seed, self.rank, self.world_size = int(batch_size), int(seed), int(rank), int(world_size)
        self.position = 0

    @property
    def global_rows(self) -> int:
        return self.batch_size * self.world_size

    def batch_at(self, position: int):
        raise NotImplementedError

    def next_batch(self):
        batch = self.batch_at(self.position)
        self.position += 1
        return batch

    def __iter__(self):
        while True:
            yield self.next_batch()

    def state_dict(self) -> dict:
        return {"position": self.position, "seed": self.seed}

    def load_state_dict(self, state: dict) -> None:
        if int(state.get("seed", self.seed)) != self.seed:
            raise UserError(f"sampler state was saved with seed {state['seed']} but this sampler has seed "
                            f"{self.seed}; resume with the run's own seed")
        self.position = int(state["position"])


class _WindowSampler(PositionalSampler):
    """Windows of seq_len + 1 tokens gathered from the (memory-mapped) token array."""

    _tag = 0

    def __init__(self, tokens: np.ndarray, seq_len: int, batch_size: int, seed: int = 0,
                 rank: int = 0, world_size: int = 1):
        super().__init__(batch_size, seed, rank, world_size)
        if seq_len < 1:
            raise UserError(f"seq_len must be at least 1, not {seq_len}")
        if len(tokens) < seq_len + 1:
            raise UserError(f"the split has {len(tokens):,} tokens, fewer than one window of seq_len+1 = "
                            f"{seq_len + 1}; use a shorter seq_len or more data")
        self.tokens, self.seq_len = tokens, int(seq_len)
        self._windows = np.lib.stride_tricks.sliding_window_view(tokens, self.seq_len + 1)

    def _global_starts(self, position: int) -> np.ndarray:
        raise NotImplementedError

    def starts_at(self, position: int) -> np.ndarray:
        """Start offsets (into the token array) of this rank's rows of batch ``position``."""
        return self._global_starts(int(position))[self.rank :: self.world_size]

    def batch_at(self, position: int) -> torch.Tensor:
        """LongTensor[batch_size, seq_len + 1] for ``position``, without moving the sampler."""
        rows = self._windows[self.starts_at(position)]
        return torch.from_numpy(rows.astype(np.int64))


class RandomWindows(_WindowSampler):
    """FORGETTER's sampler: every row starts at its own uniformly random offset, with replacement."""

    _tag = _TAG_WINDOWS

    def _global_starts(self, position: int) -> np.ndarray:
        high = len(self.tokens) - self.seq_len  # starts in [0, n - seq_len - 1]
        return rng_for(self.seed, self._tag, position).integers(0, high, size=self.global_rows)

    @property
    def windows_per_epoch(self) -> int:
        """Nominal epoch: as many windows as would tile the split once."""
        return len(self.tokens) // (self.seq_len + 1)


class _EpochChunks(_WindowSampler):
    """Consecutive chunks of seq_len+1 tokens, visited epoch after epoch in a per-epoch order.

    Sample s (row j of batch p is sample p * global_rows + j) is chunk ``order_e[s % K]`` of epoch
    ``e = s // K``; every epoch has the same number K of chunks, so any position maps to its
    epoch in O(1) and a resumed run needs no replay.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._cache: dict[int, tuple[int, np.ndarray | None]] = {}

    @property
    def chunks_per_epoch(self) -> int:
        raise NotImplementedError

    def _epoch_plan(self, epoch: int) -> tuple[int, np.ndarray | None]:
        """(offset, chunk order or None for in-order) of one epoch."""
        raise NotImplementedError

    def epoch_of(self, position: int) -> float:
        """Epochs completed by the start of batch ``position`` (fractional)."""
        return position * self.global_rows / self.chunks_per_epoch

    def _plan(self, epoch: int) -> tuple[int, np.ndarray | None]:
        if epoch not in self._cache:
            if len(self._cache) >= 4:
                self._cache.pop(next(iter(self._cache)))
            self._cache[epoch] = self._epoch_plan(epoch)
        return self._cache[epoch]

    def _global_starts(self, position: int) -> np.ndarray:
        k = self.chunks_per_epoch
        samples = position * self.global_rows + np.arange(self.global_rows, dtype=np.int64)
        epochs, index = np.divmod(samples, k)
        starts = np.empty(self.global_rows, dtype=np.int64)
        for epoch in np.unique(epochs):
            rows = epochs == epoch
            offset, order = self._plan(int(epoch))
            chunk = index[rows] if order is None else order[index[rows]]
            starts[rows] = offset + chunk * (self.seq_len + 1)
        return starts


class RandomShiftChunks(_EpochChunks):
    """BabyLlama's sampler: each epoch cuts the stream into consecutive chunks starting at a random
    offset in [0, seq_len] (so chunk borders move from epoch to epoch) and visits them shuffled."""

    _tag = _TAG_SHIFT

    @property
    def _max_offset(self) -> int:
        return min(self.seq_len, len(self.tokens) - (self.seq_len + 1))

    @property
    def chunks_per_epoch(self) -> int:
        # The same K for every offset, so epochs are equally long; at most one chunk's worth of
        # tail tokens is left out of an epoch, a different tail each time.
        return (len(self.tokens) - self._max_offset) // (self.seq_len + 1)

    def _epoch_plan(self, epoch: int) -> tuple[int, np.ndarray]:
        rng = rng_for(self.seed, self._tag, epoch)
        offset = int(rng.integers(0, self._max_offset + 1))
        return offset, rng.permutation(self.chunks_per_epoch)


class SequentialEpochs(_EpochChunks):
    """Consecutive chunks from the start, epoch after epoch; ``shuffle=True`` visits each epoch's
    chunks in a seeded order."""

    _tag = _TAG_SEQUENTIAL

    def __init__(self, tokens, seq_len, batch_size, seed=0, rank=0, world_size=1, shuffle: bool = False):
        super().__init__(tokens, seq_len, batch_size, seed, rank, world_size)
        self.shuffle = shuffle

    @property
    def chunks_per_epoch(self) -> int:
        return len(self.tokens) // (self.seq_len + 1)

    def _epoch_plan(self, epoch: int) -> tuple[int, np.ndarray | None]:
        if not self.shuffle:
            return 0, None
        return 0, rng_for(self.seed, self._tag, epoch).permutation(self.chunks_per_epoch)


def fixed_windows(tokens: np.ndarray, seq_len: int, n_windows: int | None, seed: int = 0) -> torch.Tensor:
    """The validation set: LongTensor[n, seq_len + 1], identical for the same tokens and seed.

    Windows are distinct, non-overlapping chunks chosen by the seed and kept in stream order;
    ``n_windows=None`` takes every chunk (a full pass). Asking for more windows than the split
    holds chunks falls back to random, possibly overlapping, windows (with a warning).
    """
    n, width = len(tokens), seq_len + 1
    if n < width:
        raise UserError(f"the split has {n:,} tokens, fewer than one window of seq_len+1 = {width}; "
                        "use a shorter seq_len or a larger validation split (--val-fraction)")
    k = n // width
    rng = rng_for(seed, _TAG_FIXED)
    if n_windows is None or n_windows >= k:
        if n_windows is not None and n_windows > k:
            logger.warning("asked for %d validation windows but the split holds %d distinct chunks; "
                           "drawing overlapping windows", n_windows, k)
            starts = np.sort(rng.integers(0, n - seq_len, size=n_windows))
        else:
            starts = np.arange(k, dtype=np.int64) * width
    else:
        starts = np.sort(rng.choice(k, size=n_windows, replace=False)).astype(np.int64) * width
    windows = np.lib.stride_tricks.sliding_window_view(tokens, width)[starts]
    return torch.from_numpy(windows.astype(np.int64))
