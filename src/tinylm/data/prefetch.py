"""Training batches computed ahead by DataLoader workers, so the training thread never waits on data.

Every training batch is a pure function of (seed, position, rank) (`tinylm.data.batches`), so workers
need no shared state: worker w of N computes the batches at positions start + w, start + w + N, ...
with the very `batch_at` the training thread would call, and the DataLoader hands them back in order.
The stream is therefore the same with 0 or N workers, on 1 or many ranks, and across a resume that
changes N.

The training thread keeps the one true position: it advances (and counts the batch's words) only as a
batch is *consumed*, so a checkpoint saves the position of the batches trained on, never of those
prefetched. Loading a state drops the workers; the next batch starts fresh ones at the new position.

Ctrl-C reaches every process of the terminal's group, and a scheduler's SIGTERM or SIGUSR1 every process
of the job: workers ignore them, so the training process alone decides (finish the step, checkpoint, then end the
workers) and never finds its workers dead in the middle of a step.

Each worker opens the token store itself, by path, the first time it computes a batch: the memory map
is shared by the operating system, never copied into each worker. `close()` ends the workers; the
training loop calls it on every way out (the end, a stop, an exception, Ctrl-C).
"""

from __future__ import annotations

import itertools
import signal
from pathlib import Path

import torch
from torch.utils.data import DataLoader, IterableDataset, default_convert, get_worker_info

PREFETCH_PER_WORKER = 2  # batches each worker keeps ready (DataLoader's prefetch_factor)


# The signals that ask a run to stop (tinylm.runs.execute.STOP_SIGNALS): a scheduler sends them to every
# process of the job, SLURM's SIGUSR1 warning (whose default action is to terminate) included.
STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGUSR1") if hasattr(signal, name))


def _ignore_stop_signals(worker_id: int) -> None:
    """In each worker: the stop signals are for the training process, which ends the workers itself."""
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)


def _as_arrays(batch: dict) -> dict:
    """In the worker: numpy arrays travel through the pipe by value; tensors would each go through a shared
    memory file and a passed descriptor, which cost the training thread 4-7 ms a batch on a busy 2-core CPU
    (bench/data_workers.py). Pinned batches (CUDA) stay tensors: the DataLoader pins them in its own thread."""
    return {k: v.numpy() for k, v in batch.items()}


class _BatchesFrom(IterableDataset):
    """The batches at positions start, start + 1, ... split round-robin across the DataLoader's workers."""

    def __init__(self, store_path: Path, data, batch_size: int, rank: int, world: int, start: int):
        self.store_path, self.data, self.batch_size = Path(store_path), data, batch_size
        self.rank, self.world, self.start = rank, world, start

    def _batches(self):
        from tinylm.data.batches import training_batches
        from tinylm.data.store import TokenStore

        store = TokenStore.open(self.store_path)  # in this worker: a memory map of its own, nothing copied
        return training_batches(store, self.data, self.batch_size, self.rank, self.world, count_words=False)

    def __iter__(self):
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        batches = self._batches()
        for position in itertools.count(self.start + worker, workers):
            yield batches.batch_at(position)


class PrefetchedBatches:
    """`next_batch()` / `state_dict()` / `words_seen` as the in-thread batches, served by `workers` processes.

    ``source`` is the in-thread batches (`training_batches`): it holds the position and the words count,
    and moves only when a batch is consumed. ``store_path``, ``data``, ``batch_size``, ``rank`` and
    ``world`` rebuild the same batches inside each worker.
    """

    def __init__(self, source, store_path, data, batch_size: int, rank: int, world: int, workers: int,
                 pin_memory: bool = False):
        if workers < 1:
            raise ValueError(f"PrefetchedBatches needs at least one worker, not {workers}")
        self.source, self.workers, self.pin_memory = source, int(workers), bool(pin_memory)
        self._spec = (Path(store_path), data, int(batch_size), int(rank), int(world))
        self._iterator = None

    @property
    def position(self) -> int:
        return self.source.position

    @property
    def words_seen(self) -> int | None:
        return self.source.words_seen

    def _start(self):
        dataset = _BatchesFrom(*self._spec, start=self.source.position)
        loader = DataLoader(dataset, batch_size=None, num_workers=self.workers, pin_memory=self.pin_memory,
                            prefetch_factor=PREFETCH_PER_WORKER, persistent_workers=False,
                            worker_init_fn=_ignore_stop_signals,
                            collate_fn=default_convert if self.pin_memory else _as_arrays)
        return iter(loader)

    def next_batch(self) -> dict:
        if self._iterator is None:
            self._iterator = self._start()
        batch = {k: torch.as_tensor(v) for k, v in next(self._iterator).items()}
        self.source.advance()  # consumed: only now does the position (and the words count) move
        return batch

    def close(self) -> None:
        """End the workers now (idempotent); a later `next_batch` starts fresh ones where the stream stands."""
        iterator, self._iterator = self._iterator, None
        shutdown = getattr(iterator, "_shutdown_workers", None)
        if shutdown is not None:
            shutdown()

    def state_dict(self) -> dict:
        return self.source.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.close()  # what the workers computed ahead belongs to the old position
        self.source.load_state_dict(state)

    def __del__(self):
        try:
            self.close()
        except Exception:  # interpreter shutdown: the DataLoader's own finaliser ends the workers
            pass


def serve_batches(source, store, data, batch_size: int, rank: int, world: int, workers: int,
                  device: torch.device):
    """``source`` itself when ``workers`` is 0 (batches drawn on the training thread), else prefetched."""
    if workers == 0:
        return source
    return PrefetchedBatches(source, store.path, data, batch_size, rank, world, workers,
                             pin_memory=device.type == "cuda")
