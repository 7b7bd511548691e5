"""Samplers: pure functions of (seed, position); resume continues the stream; ranks share global batches."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from tinylm.data import RandomShiftChunks, RandomWindows, SequentialEpochs, fixed_windows
from tinylm.errors import UserError

SAMPLERS = [RandomWindows, RandomShiftChunks, SequentialEpochs]


@pytest.fixture(scope="module")
def tokens(gpt2_store):
    return gpt2_store.split("train")


def _starts(tokens, batch):
    """Recover where each row starts in the token array (rows are long enough to be unique)."""
    windows = np.lib.stride_tricks.sliding_window_view(np.asarray(tokens), batch.shape[1])
    return [int(np.flatnonzero((windows == row.numpy()).all(axis=1))[0]) for row in batch]


@pytest.mark.parametrize("cls", SAMPLERS)
def test_batches_are_windows_of_the_stream(tokens, cls):
    sampler = cls(tokens, seq_len=64, batch_size=4, seed=0)
    batch = sampler.next_batch()
    assert batch.dtype == torch.int64 and batch.shape == (4, 65)
    for row, start in zip(batch, sampler.starts_at(0)):
        assert torch.equal(row, torch.from_numpy(np.asarray(tokens[start:start + 65], dtype=np.int64)))


@pytest.mark.parametrize("cls", SAMPLERS)
def test_same_seed_same_stream_and_resume_continues_it(tokens, cls):
    full = cls(tokens, seq_len=32, batch_size=8, seed=5)
    stream = [full.next_batch() for _ in range(12)]
    again = cls(tokens, seq_len=32, batch_size=8, seed=5)
    assert all(torch.equal(a, again.next_batch()) for a in stream)

    first = cls(tokens, seq_len=32, batch_size=8, seed=5)
    for _ in range(5):
        first.next_batch()
    state = json.loads(json.dumps(first.state_dict()))  # what a checkpoint stores
    resumed = cls(tokens, seq_len=32, batch_size=8, seed=5)
    resumed.load_state_dict(state)
    assert all(torch.equal(stream[p], resumed.next_batch()) for p in range(5, 12))
    assert torch.equal(resumed.batch_at(3), stream[3])


@pytest.mark.parametrize("cls", [RandomWindows, RandomShiftChunks])
def test_other_seed_other_stream(tokens, cls):
    a = cls(tokens, seq_len=32, batch_size=8, seed=1).batch_at(0)
    b = cls(tokens, seq_len=32, batch_size=8, seed=2).batch_at(0)
    assert not torch.equal(a, b)


@pytest.mark.parametrize("cls", SAMPLERS)
def test_data_parallel_ranks_split_the_single_process_batch(tokens, cls):
    single = cls(tokens, seq_len=16, batch_size=6, seed=3)
    ranks = [cls(tokens, seq_len=16, batch_size=3, seed=3, rank=r, world_size=2) for r in range(2)]
    for position in (0, 1, 57):
        whole = single.batch_at(position)
        assert torch.equal(ranks[0].batch_at(position), whole[0::2])
        assert torch.equal(ranks[1].batch_at(position), whole[1::2])


def test_random_windows_draw_every_row_independently(tokens):
    sampler = RandomWindows(tokens, seq_len=128, batch_size=64, seed=0)
    starts = np.concatenate([sampler.starts_at(p) for p in range(50)])
    assert len(np.unique(starts)) > 0.95 * len(starts)  # a different random start for every row
    assert starts.min() >= 0 and starts.max() <= len(tokens) - 129
    assert (starts % 129 != 0).any()  # not aligned to chunk borders


def test_random_shift_chunks_visit_each_chunk_once_per_epoch_with_a_moving_offset(tokens):
    seq_len = 200
    sampler = RandomShiftChunks(tokens, seq_len=seq_len, batch_size=1, seed=0)
    k = sampler.chunks_per_epoch
    offsets = []
    for epoch in range(3):
        starts = np.concatenate([sampler.starts_at(p) for p in range(epoch * k, (epoch + 1) * k)])
        offset = int(starts.min() % (seq_len + 1))
        assert 0 <= offset <= seq_len
        assert sorted((starts - offset) // (seq_len + 1)) == list(range(k))  # a permutation of the chunks
        assert not np.array_equal(starts, np.sort(starts))  # shuffled
        offsets.append(offset)
    assert len(set(offsets)) > 1
    assert sampler.epoch_of(k) == 1.0


def test_sequential_epochs_go_in_order_and_shuffle_on_request(tokens):
    seq = SequentialEpochs(tokens, seq_len=100, batch_size=4, seed=0)
    k = seq.chunks_per_epoch
    starts = np.concatenate([seq.starts_at(p) for p in range(k // 4 + 2)])
    expected = (np.arange(len(starts)) % k) * 101
    assert np.array_equal(starts, expected)
    shuffled = SequentialEpochs(tokens, seq_len=100, batch_size=k, seed=0, shuffle=True)
    assert sorted(shuffled.starts_at(0) // 101) == list(range(k))
    assert not np.array_equal(shuffled.starts_at(0), shuffled.starts_at(1))


def test_fixed_windows_are_the_same_every_time_and_distinct(tokens):
    a = fixed_windows(tokens, 64, 20, seed=0)
    assert a.shape == (20, 65) and torch.equal(a, fixed_windows(tokens, 64, 20, seed=0))
    assert not torch.equal(a, fixed_windows(tokens, 64, 20, seed=1))
    starts = _starts(tokens, a)
    assert starts == sorted(starts) and all(s % 65 == 0 for s in starts)
    assert len(set(starts)) == 20
    everything = fixed_windows(tokens, 64, None)
    assert everything.shape[0] == len(tokens) // 65


def test_bad_sampler_arguments_are_user_errors(tokens):
    with pytest.raises(UserError, match="fewer than one window"):
        RandomWindows(tokens[:10], seq_len=64, batch_size=2)
    with pytest.raises(UserError, match="rank 2"):
        RandomWindows(tokens, seq_len=8, batch_size=2, rank=2, world_size=2)
    sampler = RandomWindows(tokens, seq_len=8, batch_size=2, seed=1)
    with pytest.raises(UserError, match="seed 0"):
        sampler.load_state_dict({"position": 3, "seed": 0})
