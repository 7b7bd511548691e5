"""Corpus -> token store: read, clean, (train a tokenizer,) tokenise in parallel, write, rename.

The store is written into a hidden temporary directory beside ``out`` and renamed into place only
when complete, so an interrupted or failed prepare never leaves a half store behind. Two prepares
with the same inputs and seed give byte-identical stores, whatever the number of workers.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from tinylm import __version__
from tinylm.data.atomic_dir import atomic_directory
from tinylm.data.cleaning import DOC_MODES, NORMALIZATIONS, CleaningStats
from tinylm.data.encode_worker import EncodeConfig, EncodedPiece, encode_pieces
from tinylm.data.sources import Piece, Source, SourceReader, resolve_sources
from tinylm.data.store import STORE_FORMAT, STORE_VERSION, TokenStore
from tinylm.data.store_writer import SPLITS, SplitAssigner, SplitWriter
from tinylm.data.tokenizer import load_tokenizer, parse_trainable, special_ids, train_tokenizer, vocab_size
from tinylm.errors import UserError

logger = logging.getLogger(__name__)
DTYPES = ("auto", "uint16", "uint32")
DEFAULT_VAL_FRACTION = 0.01


@dataclass
class PrepareProgress:
    """Passed to the ``progress`` callback after every piece."""

    phase: str  # "train-tokenizer" (first pass, only for bpe:N / wordpiece:N) or "tokenize"
    bytes_done: int
    bytes_total: int | None  # None when a source's size is unknown (datasets)
    documents: int
    tokens: int


def prepare_store(
    sources: list[str | os.PathLike],
    tokenizer,
    out: str | os.PathLike,
    *,
    val_fraction: float | None = None,
    val_files: list[str | os.PathLike] | None = None,
    test_fraction: float = 0.0,
    seed: int = 0,
    docs: str = "paragraph",
    text_field: str | None = None,
    normalize: str | None = "NFC",
    dedup: bool = False,
    eos_between_docs: bool = True,
    dtype: str = "auto",
    workers: int = 0,
    overwrite: bool = False,
    progress: Callable[[PrepareProgress], None] | None = None,
    piece_bytes: int = 1 << 20,
) -> TokenStore:
    """Tokenise ``sources`` into a token store at ``out`` and return it opened.

    ``tokenizer`` is a shipped name (``gpt2``...), a path to a tokenizer.json, a spec to train on
    the train split (``bpe:16000``, ``wordpiece:8000``) or a ``tokenizers.Tokenizer``. Documents
    go to val (and test) by a seeded hash of their index (``val_fraction``, default 1%), or all
    documents of ``val_files`` go to val (then ``val_fraction`` defaults to 0).

    ``workers=0`` (the default) tokenises in this process, in parallel on all cores through the
    tokenizer's Rust thread pool; ``workers=N`` uses N single-threaded worker processes instead
    (see encode_worker.py for when each is faster). The store is the same either way.
    """
    normalize = "none" if normalize is None else str(normalize)
    normalize = normalize.upper() if normalize.lower() != "none" else "none"
    if val_fraction is None:
        val_fraction = 0.0 if val_files else DEFAULT_VAL_FRACTION
    _check_options(docs, normalize, dtype, val_fraction, test_fraction, seed)
    corpus = _corpus_sources(sources, val_files or [])
    out = Path(out).expanduser()
    _check_out(out, overwrite)

    spec = tokenizer if isinstance(tokenizer, (str, os.PathLike)) else None
    trainable = parse_trainable(str(spec)) if spec is not None else None
    tok = None if trainable else (load_tokenizer(spec) if spec is not None else tokenizer)
    if trainable and dtype == "uint16" and trainable[1] > 1 << 16:
        raise _dtype_error(str(spec), trainable[1])
    workers = max(0, int(workers or 0))
    if workers == 0 and os.environ.get("TOKENIZERS_PARALLELISM", "").lower() in ("0", "false", "off", "no"):
        logger.info("TOKENIZERS_PARALLELISM=%s: tokenising on one core; unset it or pass --workers N",
                    os.environ["TOKENIZERS_PARALLELISM"])

    with atomic_directory(out) as tmp:
        options = dict(docs=docs, text_field=text_field, normalize=normalize, dedup=dedup, seed=seed,
                       val_fraction=val_fraction, test_fraction=test_fraction, workers=workers,
                       piece_bytes=piece_bytes, progress=progress)
        if trainable:
            logger.info("training %s on the train split", spec)
            tok = _train_on(str(spec), _train_texts(corpus, **options))
        meta = _write_store(tmp, corpus, tok, str(spec) if spec is not None else "custom",
                            eos_between_docs=eos_between_docs, dtype=dtype, **options)
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return TokenStore.open(out)


def _check_options(docs, normalize, dtype, val_fraction, test_fraction, seed) -> None:
    if docs not in DOC_MODES:
        raise UserError(f"unknown --docs {docs!r}; use one of {', '.join(DOC_MODES)}")
    if normalize not in NORMALIZATIONS:
        raise UserError(f"unknown --normalize {normalize!r}; use one of {', '.join(NORMALIZATIONS)}")
    if dtype not in DTYPES:
        raise UserError(f"unknown --dtype {dtype!r}; use one of {', '.join(DTYPES)}")
    if not (0 <= val_fraction < 1 and 0 <= test_fraction < 1 and val_fraction + test_fraction < 1):
        raise UserError(f"val fraction {val_fraction} and test fraction {test_fraction} must be in [0, 1) "
                        "and leave something to train on; e.g. --val-fraction 0.01")
    if not isinstance(seed, int) or seed < 0:
        raise UserError(f"seed must be a non-negative whole number, not {seed!r}")


def _corpus_sources(sources, val_files) -> list[tuple[Source, bool]]:
    """(source, is_val) pairs: the corpus first, then the val files; a val file is never trained on."""
    val = resolve_sources(val_files) if val_files else []
    val_names = {s.name for s in val}
    train = [s for s in resolve_sources(sources) if s.name not in val_names]
    if not train:
        raise UserError("every source is also a --val file; name some training text too")
    return [(s, False) for s in train] + [(s, True) for s in val]


def _check_out(out: Path, overwrite: bool) -> None:
    if not out.exists():
        return
    if not overwrite:
        raise UserError(f"{out} already exists; choose another --out or pass --force to replace it")
    if out.is_file() or (any(out.iterdir()) and not (out / "meta.json").is_file()):
        raise UserError(f"{out} exists and is not a token store; --force only replaces token stores")


def _dtype_error(name: str, n_ids: int) -> UserError:
    return UserError(f"--dtype uint16 holds ids below 65,536 but tokenizer {name} has {n_ids:,} ids; "
                     "use --dtype uint32 (or auto)")


class _CorpusPass:
    """One streaming pass over the corpus: pieces out, then documents in with their split.

    Deduplication and split assignment happen here, in the main process and in document order, so
    both passes (tokenizer training and tokenising) see exactly the same documents in each split.
    """

    def __init__(self, corpus, *, docs, text_field, piece_bytes, val_fraction, test_fraction, seed, dedup):
        self.corpus, self.docs, self.text_field, self.piece_bytes = corpus, docs, text_field, piece_bytes
        self.assigner = SplitAssigner(val_fraction, test_fraction, seed)
        self.dedup, self.seen = dedup, set()
        self.stats = CleaningStats()
        self.readers: list[SourceReader] = []
        self.invalid_by_source = [0] * len(corpus)
        self.next_index = 0
        self.bytes_total = None if any(s.size is None for s, _ in corpus) else sum(s.size for s, _ in corpus)

    def pieces(self) -> Iterator[Piece]:
        for i, (source, _) in enumerate(self.corpus):
            read_stats = CleaningStats()  # what the reader itself decodes (CSV/JSONL records)
            reader = SourceReader(source, i, docs=self.docs, text_field=self.text_field,
                                  stats=read_stats, piece_bytes=self.piece_bytes)
            self.readers.append(reader)
            yield from reader.pieces()
            self.stats.add(read_stats)
            self.invalid_by_source[i] += read_stats.invalid_utf8_replaced

    @property
    def bytes_done(self) -> int:
        return sum(r.bytes_read for r in self.readers)

    def take(self, piece: EncodedPiece) -> tuple[np.ndarray, np.ndarray]:
        """Fold in a piece's statistics; return (keep mask, split codes of the kept documents)."""
        self.stats.add(piece.stats)
        self.invalid_by_source[piece.source] += piece.stats.invalid_utf8_replaced
        n = len(piece.lengths)
        keep = np.ones(n, dtype=bool)
        if self.dedup:
            for i, h in enumerate(piece.hashes.tolist()):
                if h in self.seen:
                    keep[i] = False
                else:
                    self.seen.add(h)
            self.stats.duplicate_documents_dropped += int(n - keep.sum())
        kept = int(keep.sum())
        if self.corpus[piece.source][1]:  # a --val file
            codes = np.ones(kept, dtype=np.int8)
        else:
            codes = self.assigner.assign(self.next_index, kept)
        self.next_index += kept
        return keep, codes


def _encode_config(tokenizer_json, docs, normalize, dedup, separator_id) -> EncodeConfig:
    return EncodeConfig(tokenizer_json=tokenizer_json, docs=docs, normalize=normalize,
                        separator_id=separator_id, dedup=dedup)


def _train_texts(corpus, *, docs, text_field, normalize, dedup, seed, val_fraction, test_fraction, workers,
                 piece_bytes, progress) -> Iterator[str]:
    """The cleaned train-split documents, for tokenizer training (first pass)."""
    run = _CorpusPass(corpus, docs=docs, text_field=text_field, piece_bytes=piece_bytes,
                      val_fraction=val_fraction, test_fraction=test_fraction, seed=seed, dedup=dedup)
    n_docs = 0
    for piece in encode_pieces(run.pieces(), _encode_config(None, docs, normalize, dedup, None), workers):
        keep, codes = run.take(piece)
        kept = [t for t, k in zip(piece.texts, keep) if k]
        for text, code in zip(kept, codes):
            if code == 0:
                n_docs += 1
                yield text
        if progress:
            progress(PrepareProgress("train-tokenizer", run.bytes_done, run.bytes_total, n_docs, 0))
    if n_docs == 0:
        raise _empty_corpus_error(corpus)


def _train_on(spec: str, texts: Iterator[str]):
    """Train a tokenizer, re-raising our own errors (and Ctrl-C) from the text iterator as they were:
    an exception raised inside an iterator that Rust consumes would otherwise come back rewrapped."""
    failure: list[BaseException] = []

    def guarded() -> Iterator[str]:
        try:
            yield from texts
        except GeneratorExit:
            raise
        except BaseException as e:  # noqa: BLE001 - handed back below, unchanged
            failure.append(e)

    tok = train_tokenizer(spec, guarded())
    if failure:
        raise failure[0]
    return tok


def _empty_corpus_error(corpus) -> UserError:
    names = ", ".join(s.name for s, _ in corpus[:3]) + (" ..." if len(corpus) > 3 else "")
    return UserError(f"no text to train on in {names}: every document is empty after cleaning; "
                     "check the paths, --text-field and --docs")


def _write_store(tmp: Path, corpus, tok, tokenizer_name: str, *, eos_between_docs: bool, dtype: str, docs,
                 text_field, normalize, dedup, seed, val_fraction, test_fraction, workers, piece_bytes,
                 progress) -> dict:
    n_ids = vocab_size(tok)
    if dtype == "uint16" and n_ids > 1 << 16:
        raise _dtype_error(tokenizer_name, n_ids)
    dtype = dtype if dtype != "auto" else ("uint16" if n_ids <= 1 << 16 else "uint32")
    specials = special_ids(tok)
    separator = specials.get("eos", specials.get("sep")) if eos_between_docs else None
    if eos_between_docs and separator is None:
        logger.warning("tokenizer %s has no EOS or [SEP] token; documents are written without a separator",
                       tokenizer_name)
    # The exact bytes whose hash meta.json records: `sha256sum tokenizer.json` matches it.
    tokenizer_json = tok.to_str()
    (tmp / "tokenizer.json").write_text(tokenizer_json, encoding="utf-8")

    run = _CorpusPass(corpus, docs=docs, text_field=text_field, piece_bytes=piece_bytes,
                      val_fraction=val_fraction, test_fraction=test_fraction, seed=seed, dedup=dedup)
    names = SPLITS if test_fraction > 0 else SPLITS[:2]
    writers = [SplitWriter(tmp, name, dtype, n_ids) for name in names]
    try:
        config = _encode_config(tokenizer_json, docs, normalize, dedup, separator)
        for piece in encode_pieces(run.pieces(), config, workers):
            keep, codes = run.take(piece)
            lengths, words, tokens = piece.lengths, piece.words, piece.tokens
            if not keep.all():
                token_keep = np.repeat(keep, lengths)
                lengths, words, tokens = lengths[keep], words[keep], tokens[token_keep]
            for code, writer in enumerate(writers):
                chosen = codes == code
                if chosen.all():
                    writer.write(tokens, lengths, words)
                elif chosen.any():
                    writer.write(tokens[np.repeat(chosen, lengths)], lengths[chosen], words[chosen])
            if progress:
                progress(PrepareProgress("tokenize", run.bytes_done, run.bytes_total,
                                         sum(w.documents for w in writers), sum(w.tokens for w in writers)))
        splits = {w.name: w.close() for w in writers}
    except BaseException:
        for w in writers:
            w.abort()
        raise
    if splits["train"]["documents"] == 0:
        raise _empty_corpus_error(corpus) if run.next_index == 0 else UserError(
            "every document went to val/test; lower --val-fraction / --test-fraction")
    if val_fraction > 0 and splits["val"]["documents"] == 0:
        raise UserError(f"no document fell in the val split ({run.next_index} documents, val fraction "
                        f"{val_fraction}); raise --val-fraction, use smaller documents (--docs paragraph or line), "
                        "or pass --val FILES")
    if run.stats.invalid_utf8_replaced:
        logger.warning("replaced %d invalid UTF-8 sequences with U+FFFD (counted per source in meta.json)",
                       run.stats.invalid_utf8_replaced)
    total_counts = sum(w.counts for w in writers)
    return {
        "format": STORE_FORMAT,
        "version": STORE_VERSION,
        "created_by": f"tinylm {__version__}",
        "tokenizer": {"name": tokenizer_name, "sha256": hashlib.sha256(tokenizer_json.encode("utf-8")).hexdigest(), "file": "tokenizer.json"},
        "vocab_size": n_ids,
        "dtype": dtype,
        "special_ids": specials,
        "separator": {"eos_between_docs": eos_between_docs, "token_id": separator,
                      "token": None if separator is None else tok.id_to_token(separator),
                      "placement": "after every document" if separator is not None else "none"},
        "options": {"docs": docs, "text_field": text_field, "normalize": normalize, "dedup": dedup, "seed": seed,
                    "val_fraction": val_fraction, "test_fraction": test_fraction},
        "sources": [
            {"name": s.name, "role": "val" if is_val else "corpus", "bytes": s.size,
             **({"fingerprint": r.fingerprint} if s.format == "hf" else {"sha256": r.sha256}),
             **({"invalid_utf8_replaced": run.invalid_by_source[i]} if run.invalid_by_source[i] else {})}
            for i, ((s, is_val), r) in enumerate(zip(corpus, run.readers))
        ],
        "cleaning": run.stats.as_dict(),
        "counts": {
            "documents": sum(s["documents"] for s in splits.values()),
            "words": sum(s["words"] for s in splits.values()),
            "tokens": sum(s["tokens"] for s in splits.values()),
            "distinct_tokens": int(np.count_nonzero(total_counts)),
        },
        "splits": splits,
    }
