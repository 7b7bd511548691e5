"""Clean and tokenise pieces of a corpus, in this process or in worker subprocesses.

In this process (the default), ``encode_batch_fast`` runs on all cores in the tokenizer's Rust
thread pool with the GIL released. Worker subprocesses (``workers=N``) each run one thread and
also parallelise the Python side (decoding, cleaning, turning encodings into arrays). Measured on
the 2-core reference machine (bench/prepare_speed.py --workers 0 2): under the usual shared
load the in-process path was faster and used 15-25% less CPU per token (probably because two
processes each keep their own copy of the tokenizer's tables in a shared cache); on a lightly
loaded machine an early prototype favoured two processes by ~10%. Either way results come back
in input order, so the store does not depend on the choice.
"""

from __future__ import annotations

import hashlib
import itertools
import signal
from dataclasses import dataclass
from typing import Iterable, Iterator

import numpy as np

from tinylm.data.cleaning import CleaningStats, clean_documents, decode_utf8
from tinylm.data.sources import Piece


@dataclass(frozen=True)
class EncodeConfig:
    """What a worker needs; picklable so it can travel to spawned processes."""

    tokenizer_json: str | None  # None: clean only and return the texts (tokenizer training)
    docs: str  # paragraph | line | file, for raw-text pieces
    normalize: str
    separator_id: int | None  # appended after every document when set
    dedup: bool  # return a 64-bit hash per document so the main process can drop repeats


@dataclass
class EncodedPiece:
    """One piece's documents: their tokens back to back, and per-document lengths, words, hashes."""

    source: int
    lengths: np.ndarray  # int64, tokens per document including the separator
    words: np.ndarray  # int64, whitespace-separated words per document
    hashes: np.ndarray | None  # uint64 per document when deduplicating
    stats: CleaningStats
    tokens: np.ndarray | None = None  # uint32, all documents concatenated
    texts: list[str] | None = None  # cleaned documents (clean-only mode)


class PieceEncoder:
    """Turns one ``Piece`` into an ``EncodedPiece``; holds the tokenizer, built once per process."""

    def __init__(self, config: EncodeConfig):
        self.config = config
        self._tokenizer = None
        if config.tokenizer_json is not None:
            from tokenizers import Tokenizer

            self._tokenizer = Tokenizer.from_str(config.tokenizer_json)
            # encode_batch_fast (tokenizers >= 0.20) skips computing character offsets we never use.
            self._encode_batch = getattr(self._tokenizer, "encode_batch_fast", self._tokenizer.encode_batch)

    def __call__(self, piece: Piece) -> EncodedPiece:
        cfg, stats = self.config, CleaningStats()
        if isinstance(piece.data, bytes):
            docs = clean_documents([decode_utf8(piece.data, stats)], cfg.docs, cfg.normalize, stats)
        else:
            docs = clean_documents(piece.data, None, cfg.normalize, stats)
        words = np.fromiter((len(d.split()) for d in docs), dtype=np.int64, count=len(docs))
        hashes = None
        if cfg.dedup:
            hashes = np.fromiter(
                (int.from_bytes(hashlib.blake2b(d.encode("utf-8"), digest_size=8).digest(), "little") for d in docs),
                dtype=np.uint64, count=len(docs),
            )
        if self._tokenizer is None:
            return EncodedPiece(piece.source, np.zeros(len(docs), np.int64), words, hashes, stats, texts=docs)
        ids = [e.ids for e in self._encode_batch(docs, add_special_tokens=False)]
        if cfg.separator_id is not None:
            for doc_ids in ids:
                doc_ids.append(cfg.separator_id)
        lengths = np.fromiter(map(len, ids), dtype=np.int64, count=len(ids))
        tokens = np.fromiter(itertools.chain.from_iterable(ids), dtype=np.uint32, count=int(lengths.sum()))
        return EncodedPiece(piece.source, lengths, words, hashes, stats, tokens=tokens)


def serve() -> None:
    """Worker subprocess main loop: a config, then pieces in, ``("ok", EncodedPiece)`` out, until EOF.

    Errors go back to the parent as ``("error", exception)`` so a ``UserError`` raised here (say,
    a binary file) reaches the user as one line, not as a traceback from a dead worker.
    """
    import sys
    import traceback

    from tinylm.data.worker_pool import receive, send

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle (it cleans up)
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # nothing else may write into the result stream
    try:
        encoder = PieceEncoder(receive(stdin))
        while True:
            piece = receive(stdin)
            try:
                send(stdout, ("ok", encoder(piece)))
            except Exception as e:  # noqa: BLE001 - handed to the parent, which raises it
                try:
                    send(stdout, ("error", e))
                except Exception:  # unpicklable exception: send its text instead
                    send(stdout, ("error", RuntimeError(traceback.format_exc())))
    except (EOFError, BrokenPipeError):
        return


def encode_pieces(pieces: Iterable[Piece], config: EncodeConfig, workers: int) -> Iterator[EncodedPiece]:
    """Encode pieces in order. ``workers=0`` encodes in this process (the tokenizer may still use
    its thread pool), otherwise in that many single-threaded worker subprocesses."""
    if workers <= 0:
        encoder = PieceEncoder(config)
        for piece in pieces:
            yield encoder(piece)
        return
    from tinylm.data.worker_pool import map_in_workers

    yield from map_in_workers(pieces, config, workers)
