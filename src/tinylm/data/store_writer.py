"""Writing one split of a token store as documents stream in, and deciding each document's split.

A document's split is a seeded hash of its index, decidable the moment it is read: no pass over
the whole corpus has to be held in memory, and the same seed always gives the same split.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np

SPLITS = ("train", "val", "test")


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """A well-mixed 64-bit hash (SplitMix64's finaliser); numpy wraps uint64 arithmetic."""
    x = x + np.uint64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def uniform_by_index(seed: int, indices: np.ndarray) -> np.ndarray:
    """A uniform [0, 1) draw per index that depends only on (seed, index)."""
    key = _splitmix64(np.asarray([seed], dtype=np.uint64))[0]
    h = _splitmix64(np.asarray(indices, dtype=np.uint64) ^ key)
    return (h >> np.uint64(11)).astype(np.float64) / float(1 << 53)


class SplitAssigner:
    """Document index -> split code (0 train, 1 val, 2 test), by a seeded hash of the index."""

    def __init__(self, val_fraction: float, test_fraction: float, seed: int):
        self.val_fraction, self.test_fraction, self.seed = val_fraction, test_fraction, seed

    def assign(self, first_index: int, count: int) -> np.ndarray:
        u = uniform_by_index(self.seed, np.arange(first_index, first_index + count, dtype=np.uint64))
        codes = np.zeros(count, dtype=np.int8)
        codes[u < self.val_fraction + self.test_fraction] = 2
        codes[u < self.val_fraction] = 1
        return codes


class SplitWriter:
    """Appends documents to ``<split>.bin`` and streams their offsets and word counts to disk.

    Offsets and word counts go to raw side files while writing and become ``.npy`` at ``close``,
    so nothing per document is held in memory however large the corpus.
    """

    def __init__(self, directory: Path, name: str, dtype: str, vocab_size: int):
        self.directory, self.name, self.dtype = Path(directory), name, np.dtype(dtype).newbyteorder("<")
        self.bin_path = self.directory / f"{name}.bin"
        self._bin = open(self.bin_path, "wb")
        self._offsets_raw = open(self.directory / f".{name}.offsets.raw", "wb")
        self._words_raw = open(self.directory / f".{name}.words.raw", "wb")
        np.zeros(1, dtype="<i8").tofile(self._offsets_raw)
        self.counts = np.zeros(vocab_size, dtype=np.int64)
        self.tokens = self.documents = self.words = 0

    def write(self, tokens: np.ndarray, lengths: np.ndarray, words: np.ndarray) -> None:
        if len(lengths) == 0:
            return
        tokens.astype(self.dtype, copy=False).tofile(self._bin)
        (self.tokens + np.cumsum(lengths, dtype=np.int64)).astype("<i8").tofile(self._offsets_raw)
        words.astype("<u4").tofile(self._words_raw)
        self.counts += np.bincount(tokens, minlength=len(self.counts))[: len(self.counts)]
        self.tokens += int(lengths.sum())
        self.documents += len(lengths)
        self.words += int(words.sum())

    def close(self) -> dict:
        """Finish the files and return this split's entry for meta.json."""
        for f in (self._bin, self._offsets_raw, self._words_raw):
            f.close()
        _raw_to_npy(self.directory / f".{self.name}.offsets.raw", self.directory / f"{self.name}.docs.npy", "<i8")
        _raw_to_npy(self.directory / f".{self.name}.words.raw", self.directory / f"{self.name}.words.npy", "<u4")
        return {
            "file": self.bin_path.name,
            "documents_file": f"{self.name}.docs.npy",  # int64 offsets, documents + 1 of them
            "words_file": f"{self.name}.words.npy",  # uint32 words per document
            "documents": self.documents,
            "words": self.words,
            "tokens": self.tokens,
            "distinct_tokens": int(np.count_nonzero(self.counts)),
        }

    def abort(self) -> None:
        for f in (self._bin, self._offsets_raw, self._words_raw):
            f.close()


def _raw_to_npy(raw: Path, npy: Path, dtype: str) -> None:
    """Turn a raw little-endian array into a .npy file by prefixing the header and streaming the
    bytes (no memory map, so the copy does not show up as resident memory)."""
    n = os.path.getsize(raw) // np.dtype(dtype).itemsize
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False, "shape": (n,)}
    with open(npy, "wb") as out, open(raw, "rb") as src:
        np.lib.format.write_array_header_1_0(out, header)
        shutil.copyfileobj(src, out, 1 << 22)
    raw.unlink()
