"""What counting words seen costs a training run: the time to draw a batch with and without the count.

Every batch, the run adds up the words of the global batch's windows (tinylm.data.words_seen: two
binary searches over the document offsets per row). This draws batches from a synthetic split the size
of BabyLM's 100M-word corpus (about 130M tokens, documents of 10 to 400 tokens) with each decoder
sampler, counting and not, and prints JSON: microseconds per batch both ways, the overhead, and the
one-off cost of building the counter (cumulative word counts over every document). A CPU step of the
smallest BabyLM model takes tens of milliseconds, so the overhead is to be read against that.

    python bench/words_seen.py                      # 64 x 512, 130M tokens
    python bench/words_seen.py --tokens 2e6 --batches 20   # a quick look
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import numpy as np

from tinylm.data import RandomShiftChunks, RandomWindows, SequentialEpochs
from tinylm.data.words_seen import WordsSeen
from tinylm.data.batches import WindowBatches

SAMPLERS = {"windows": RandomWindows, "chunks": RandomShiftChunks, "epochs": SequentialEpochs}


def synthetic_split(n_tokens: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(10, 400, size=n_tokens // 200 + 1)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    offsets = offsets[offsets <= n_tokens]
    offsets[-1] = n_tokens
    words = (np.diff(offsets) * 0.75).astype(np.int64)
    tokens = rng.integers(0, 50_000, size=n_tokens, dtype=np.uint16)
    tokens[offsets[1:] - 1] = 50_256 % 65_536  # each document ends with its separator
    return tokens, offsets, words, 50_256 % 65_536


def per_batch_us(batches, n: int) -> float:
    batches.next_batch()  # warm
    t = time.perf_counter()
    for _ in range(n):
        batches.next_batch()
    return (time.perf_counter() - t) / n * 1e6


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tokens", type=float, default=130e6)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--seq-len", type=int, default=512)
    p.add_argument("--batches", type=int, default=200)
    args = p.parse_args()
    tokens, offsets, words, sep = synthetic_split(int(args.tokens))
    t = time.perf_counter()
    counter = WordsSeen(tokens, offsets, words, sep)
    build_s = time.perf_counter() - t
    rows = []
    for name, cls in SAMPLERS.items():
        plain = per_batch_us(WindowBatches(cls(tokens, args.seq_len, args.batch_size, seed=0)), args.batches)
        counted = per_batch_us(WindowBatches(cls(tokens, args.seq_len, args.batch_size, seed=0), counter), args.batches)
        rows.append({"sampler": name, "batch_us": round(plain, 1), "batch_counting_words_us": round(counted, 1),
                     "overhead_us": round(counted - plain, 1)})
    print(json.dumps({"tokens": int(args.tokens), "documents": len(words), "batch": f"{args.batch_size}x{args.seq_len}",
                      "counter_build_s": round(build_s, 3), "samplers": rows, "machine": platform.machine()}, indent=1))


if __name__ == "__main__":
    main()
