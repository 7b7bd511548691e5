"""An ordered, bounded pool of worker *subprocesses* that encode pieces.

Why not ``multiprocessing``/``ProcessPoolExecutor``: with ``spawn`` every worker re-imports the
caller's ``__main__``, which breaks ``python - < script``, re-runs unguarded user scripts, and in
those cases left the pool hanging; ``fork`` copies the parent's threads (torch, the tokenizer's
pool) half-locked. Plain subprocesses running ``tinylm.data.encode_worker.serve`` have neither
problem. Pieces go out round-robin and results come back in the same order, so the output does not
depend on timing or on the number of workers. Each worker has at most ``depth`` pieces in flight,
so memory stays flat however large the corpus.
"""

from __future__ import annotations

import os
import pickle
import queue
import struct
import subprocess
import sys
import threading
from collections import deque
from pathlib import Path
from typing import Any, BinaryIO, Iterable, Iterator

_HEADER = struct.Struct("<Q")
_STOP = object()


def send(stream: BinaryIO, obj: Any) -> None:
    """Write one length-prefixed pickle (the wire format in both directions)."""
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_HEADER.pack(len(data)))
    stream.write(data)
    stream.flush()


def receive(stream: BinaryIO) -> Any:
    """Read one length-prefixed pickle; raises EOFError when the other side has gone."""
    header = stream.read(_HEADER.size)
    if len(header) < _HEADER.size:
        raise EOFError
    (size,) = _HEADER.unpack(header)
    data = stream.read(size)
    if len(data) < size:
        raise EOFError
    return pickle.loads(data)


class _Worker:
    """One subprocess plus a feeder thread, so the parent never blocks writing to a busy worker
    (which could deadlock against the worker blocking on writing its result back)."""

    def __init__(self, index: int, config: Any, depth: int):
        import tinylm

        env = dict(os.environ, TOKENIZERS_PARALLELISM="false")  # one thread each: the workers are the parallelism
        package_root = str(Path(tinylm.__file__).resolve().parents[1])
        env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
        self.index = index
        self.proc = subprocess.Popen(
            [sys.executable, "-c", "from tinylm.data.encode_worker import serve; serve()"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env,
        )
        self.inbox: queue.Queue = queue.Queue(maxsize=depth)
        self.feed_error: BaseException | None = None
        self.thread = threading.Thread(target=self._feed, args=(config,), daemon=True, name=f"tinylm-feed-{index}")
        self.thread.start()

    def _feed(self, config: Any) -> None:
        try:
            send(self.proc.stdin, config)
            while (item := self.inbox.get()) is not _STOP:
                send(self.proc.stdin, item)
        except (BrokenPipeError, OSError, ValueError) as e:  # the worker died; reported by result()
            self.feed_error = e
        finally:
            try:
                self.proc.stdin.close()
            except OSError:
                pass

    def result(self) -> Any:
        try:
            status, payload = receive(self.proc.stdout)
        except EOFError:
            code = self.proc.wait()
            raise RuntimeError(f"tokenizer worker {self.index} died (exit status {code}); "
                               "see its error above, or check memory") from self.feed_error
        if status == "error":
            raise payload
        return payload

    def stop(self, kill: bool) -> None:
        if kill:
            self.proc.kill()  # a feeder blocked writing to it then fails and ends
        try:
            self.inbox.put_nowait(_STOP)
        except queue.Full:  # only when killed: the feeder is stuck on a dead pipe and will end
            pass
        self.thread.join(timeout=5)
        try:
            self.proc.stdout.close()
        except OSError:
            pass
        self.proc.wait()


def map_in_workers(items: Iterable[Any], config: Any, workers: int, depth: int = 2) -> Iterator[Any]:
    """Run ``encode_worker.serve`` in ``workers`` subprocesses over ``items``; yield results in order.

    An error in a worker is raised here as it was raised there (a ``UserError`` stays one).
    """
    pool = [_Worker(i, config, depth) for i in range(workers)]
    pending: deque[_Worker] = deque()
    clean = False
    try:
        for k, item in enumerate(items):
            worker = pool[k % workers]
            if len(pending) >= depth * workers:  # the oldest result belongs to this worker: frees its slot
                yield pending.popleft().result()
            worker.inbox.put(item)
            pending.append(worker)
        while pending:
            yield pending.popleft().result()
        clean = True
    finally:
        for worker in pool:
            worker.stop(kill=not clean)
