"""`data.workers`: batches computed ahead by DataLoader workers are the batches of the training thread.

Same stream with 0 or 2 workers (every sampler), the same global batch on 1 or 2 ranks, a checkpoint
position that counts consumed batches only, and no worker process left behind.
"""

from __future__ import annotations

import multiprocessing
from types import SimpleNamespace

import pytest
import torch

from tinylm.data.batches import training_batches
from tinylm.data.prefetch import PrefetchedBatches
from tinylm.data.store import TokenStore

STEPS = 7


def _data(sampler):
    return SimpleNamespace(sampler=sampler, seq_len=16, seed=3, mlm_probability=0.15)


def _store(request, sampler):
    return TokenStore.open(request.getfixturevalue("tiny_bert_store" if sampler == "mlm" else "tiny_store"))


def _batches(store, sampler, workers, rank=0, world=1, batch_size=3):
    source = training_batches(store, _data(sampler), batch_size, rank, world)
    if workers == 0:
        return source
    return PrefetchedBatches(source, store.path, _data(sampler), batch_size, rank, world, workers)


def _draw(batches, n=STEPS):
    try:
        return [batches.next_batch() for _ in range(n)]
    finally:
        getattr(batches, "close", lambda: None)()


def _same(a: list[dict], b: list[dict]) -> bool:
    return len(a) == len(b) and all(x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)
                                    for x, y in zip(a, b))


@pytest.mark.parametrize("sampler", ["windows", "chunks", "epochs", "mlm"])
def test_two_workers_serve_the_training_threads_batches(request, sampler):
    store = _store(request, sampler)
    in_thread, prefetched = _batches(store, sampler, 0), _batches(store, sampler, 2)
    assert _same(_draw(in_thread), _draw(prefetched))
    assert prefetched.state_dict() == in_thread.state_dict()  # position and words counted alike
    assert not multiprocessing.active_children()


def test_two_ranks_with_workers_split_the_one_rank_global_batch(tiny_store):
    store = TokenStore.open(tiny_store)
    whole = _draw(_batches(store, "chunks", 0, batch_size=4))
    ranks = [_draw(_batches(store, "chunks", 2, rank=r, world=2, batch_size=2)) for r in range(2)]
    for step, batch in enumerate(whole):
        for key in batch:  # rank r holds rows r::2 of the global batch (tinylm.data.samplers)
            assert torch.equal(batch[key][0::2], ranks[0][step][key])
            assert torch.equal(batch[key][1::2], ranks[1][step][key])


def test_checkpoint_holds_the_consumed_position_and_resumes_across_worker_counts(tiny_store):
    store = TokenStore.open(tiny_store)
    straight = _draw(_batches(store, "windows", 0), 2 * STEPS)
    first = _batches(store, "windows", 2)
    head = [first.next_batch() for _ in range(STEPS)]  # the workers have computed batches beyond these
    state = first.state_dict()
    first.close()
    assert state["position"] == STEPS
    resumed = _batches(store, "windows", 1)
    resumed.load_state_dict(state)
    assert _same(head + _draw(resumed, STEPS), straight)
    rewound = _batches(store, "windows", 2)  # a loaded state drops what was prefetched for the old position
    rewound.next_batch()
    rewound.load_state_dict({**state, "position": 5})
    assert _same(_draw(rewound, 2), straight[5:7])


@pytest.mark.filterwarnings("ignore:.*pin_memory.*")
def test_batches_for_pinning_travel_as_tensors_and_equal_the_same(tiny_store):
    """With `pin_memory` (CUDA) workers send tensors for the DataLoader to pin; the batches are the same."""
    store = TokenStore.open(tiny_store)
    source = training_batches(store, _data("windows"), 3)
    pinned = PrefetchedBatches(source, store.path, _data("windows"), 3, 0, 1, workers=1, pin_memory=True)
    assert _same(_draw(pinned, 3), _draw(_batches(store, "windows", 0), 3))
