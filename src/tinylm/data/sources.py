"""Where text comes from: files, directories, globs, the shipped corpus, Hugging Face datasets.

Sources are resolved up front (so a missing path fails before anything is written) and then read
as a stream of *pieces*: runs of whole documents, a few hundred KB each, that can be cleaned and
tokenised independently and in parallel. Plain text travels as raw bytes cut at document
boundaries (decoding happens in the workers); CSV/JSONL/datasets records travel as lists of texts.
"""

from __future__ import annotations

import bz2
import csv
import glob
import gzip
import hashlib
import io
import json
import os
import sys
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, NamedTuple

from tinylm.data.cleaning import PARAGRAPH_BREAK_BYTES, CleaningStats, decode_utf8
from tinylm.errors import UserError
from tinylm.package_files import package_file

BUILTIN_PREFIX = "builtin:"
HF_PREFIX = "hf:"
DEFAULT_CORPUS = "builtin:children"  # Gutenberg children's books shipped with the package
_CORPUS_DIR = package_file("assets", "corpus")
_SNIFF_BYTES = 8192
_GLOB_CHARS = "*?["


@dataclass(frozen=True)
class Source:
    """One input: a file (``text``, ``csv``, ``tsv``, ``jsonl``, ``json``) or a Hugging Face dataset."""

    name: str  # what meta.json records: an absolute path, builtin:..., or hf:...
    format: str
    path: Path | None = None
    compression: str | None = None  # "gz", "bz2" or None
    size: int | None = None  # bytes on disk; None for datasets


class Piece(NamedTuple):
    """A run of whole documents from one source: raw bytes (plain text) or a list of record texts."""

    source: int
    data: bytes | list[str]


def default_corpus_files() -> list[Path]:
    """The shipped public-domain corpus (a few Gutenberg children's books, gzipped)."""
    return sorted(_CORPUS_DIR.glob("*.txt.gz"))


def resolve_sources(specs: list[str | os.PathLike]) -> list[Source]:
    """Expand paths, directories (recursively, hidden files skipped) and globs into sources.

    Order is the order given, each directory or glob sorted, so the same command gives the same
    document order (and so the same store). A file named twice is read once.
    """
    if not specs:
        raise UserError("no sources given; name files, directories or globs of text to prepare")
    out: list[Source] = []
    seen: set[str] = set()
    for spec in specs:
        for source in _resolve_one(str(spec)):
            if source.name not in seen:
                seen.add(source.name)
                out.append(source)
    return out


def _resolve_one(spec: str) -> list[Source]:
    if spec.startswith(HF_PREFIX):
        return [Source(name=spec, format="hf")]
    if spec.startswith(BUILTIN_PREFIX):
        if spec != DEFAULT_CORPUS:
            raise UserError(f"unknown built-in corpus {spec!r}; the package ships {DEFAULT_CORPUS!r}")
        files = default_corpus_files()
        if not files:
            raise UserError(f"the shipped corpus is missing from {_CORPUS_DIR}; reinstall tinylm")
        return [_file_source(p, name=f"{DEFAULT_CORPUS}/{p.name}") for p in files]
    path = Path(spec).expanduser()
    if path.is_file():
        return [_file_source(path)]
    if path.is_dir():
        files = sorted(
            p for p in path.rglob("*")
            if p.is_file() and not any(part.startswith(".") for part in p.relative_to(path).parts)
        )
        if not files:
            raise UserError(f"directory {spec} holds no files; point at a directory of text files")
        return [_file_source(p) for p in files]
    if any(c in spec for c in _GLOB_CHARS):
        files = sorted(Path(p) for p in glob.glob(os.path.expanduser(spec), recursive=True) if Path(p).is_file())
        if not files:
            raise UserError(f"no files match {spec!r}; check the pattern (quote it so the shell does not expand it)")
        return [_file_source(p) for p in files]
    raise UserError(f"source {spec} does not exist; check the path (or use hf:NAME for a Hugging Face dataset)")


def _file_source(path: Path, name: str | None = None) -> Source:
    suffixes = [s.lower() for s in path.suffixes]
    compression = None
    if suffixes and suffixes[-1] in (".gz", ".bz2"):
        compression = suffixes.pop()[1:]
    ext = suffixes[-1] if suffixes else ""
    fmt = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json"}.get(ext, "text")
    resolved = path.resolve()
    return Source(name=name or str(resolved), format=fmt, path=resolved, compression=compression,
                  size=resolved.stat().st_size)


class HashingReader(io.RawIOBase):
    """Reads a file while hashing its bytes, so a source is hashed in the same pass that reads it."""

    def __init__(self, path: Path):
        self._file = open(path, "rb")
        self.sha256 = hashlib.sha256()
        self.bytes_read = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        n = self._file.readinto(buffer)
        if n:
            self.sha256.update(memoryview(buffer)[:n])
            self.bytes_read += n
        return n

    def close(self) -> None:
        self._file.close()
        super().close()


class SourceReader:
    """Reads one source as pieces; afterwards ``sha256`` holds the hash of the file's bytes
    (``fingerprint`` the ``datasets`` fingerprint, for a Hugging Face dataset)."""

    def __init__(self, source: Source, index: int, *, docs: str, text_field: str | None,
                 stats: CleaningStats, piece_bytes: int):
        self.source, self.index, self.docs = source, index, docs
        self.text_field, self.stats, self.piece_bytes = text_field, stats, piece_bytes
        self.sha256: str | None = None
        self.fingerprint: str | None = None
        self._raw: HashingReader | None = None

    @property
    def bytes_read(self) -> int:
        return self._raw.bytes_read if self._raw is not None else 0

    def pieces(self) -> Iterator[Piece]:
        if self.source.format == "hf":
            from tinylm.data.hf_source import iter_hf_records

            yield from self._record_pieces(iter_hf_records(self.source.name, self.text_field, self))
            return
        try:
            self._raw = HashingReader(self.source.path)
        except OSError as e:
            raise UserError(f"cannot open {self.source.name} ({e.strerror}); check that it exists and is readable") from e
        stream = self._open_decompressed(self._raw)
        try:
            head = stream.peek(_SNIFF_BYTES)[:_SNIFF_BYTES]
            if b"\x00" in head:
                raise UserError(f"{self.source.name} looks like a binary file (it holds NUL bytes); "
                                "pass only UTF-8 text, CSV or JSONL files")
            if self.source.format == "text":
                for data in _cut_pieces(stream, self.docs, self.piece_bytes):
                    yield Piece(self.index, data)
            elif self.source.format in ("csv", "tsv"):
                yield from self._record_pieces(self._csv_texts(stream))
            else:
                yield from self._record_pieces(self._json_texts(stream))
            while stream.read(1 << 20):  # hash any bytes a reader left unread (trailing data)
                pass
            self.sha256 = self._raw.sha256.hexdigest()
        except (OSError, EOFError, zlib.error) as e:
            kind = f" and a valid .{self.source.compression} file" if self.source.compression else ""
            raise UserError(f"cannot read {self.source.name} ({e}); check that the file is complete{kind}") from e
        finally:
            stream.close()

    def _open_decompressed(self, raw: HashingReader) -> io.BufferedReader:
        if self.source.compression == "gz":
            return io.BufferedReader(gzip.GzipFile(fileobj=raw, mode="rb"), 1 << 20)
        if self.source.compression == "bz2":
            return io.BufferedReader(bz2.BZ2File(raw, mode="rb"), 1 << 20)
        return io.BufferedReader(raw, 1 << 20)

    def _record_pieces(self, texts: Iterator[str]) -> Iterator[Piece]:
        batch: list[str] = []
        size = 0
        for text in texts:
            batch.append(text)
            size += len(text)
            if size >= self.piece_bytes or len(batch) >= 20_000:
                yield Piece(self.index, batch)
                batch, size = [], 0
        if batch:
            yield Piece(self.index, batch)

    def _lines(self, stream: io.BufferedReader) -> Iterator[str]:
        for raw_line in stream:
            yield decode_utf8(raw_line, self.stats)

    def _csv_texts(self, stream: io.BufferedReader) -> Iterator[str]:
        csv.field_size_limit(min(sys.maxsize, 2**31 - 1))  # long documents are normal here
        rows = csv.reader(self._lines(stream), delimiter="\t" if self.source.format == "tsv" else ",")
        name, field = self.source.name, self.text_field
        try:
            header = next(rows, None)
            if header is None:
                return
            if field is not None and field.isdigit() and field not in header:
                column = int(field)  # headerless file: the field names a column by position
                rows = _chain_one(header, rows)
            else:
                field = field or "text"
                if field not in header:
                    hint = "pass --text-field with one of them" if self.text_field is None else "check --text-field"
                    raise UserError(f"{name} has no column {field!r} (columns: {', '.join(header)}); {hint}")
                column = header.index(field)
            for row in rows:
                yield row[column] if column < len(row) else ""
        except csv.Error as e:
            raise UserError(f"{name} is not valid CSV ({e}); check the file or convert it to JSONL") from e

    def _json_texts(self, stream: io.BufferedReader) -> Iterator[str]:
        field = self.text_field or "text"
        first = stream.peek(64).lstrip()[:1]
        if self.source.format == "json" and first == b"[":
            try:  # a JSON array is read whole: convert big ones to JSON lines to stream them
                records = json.loads(decode_utf8(stream.read(), self.stats))
            except json.JSONDecodeError as e:
                raise UserError(f"{self.source.name} is not valid JSON ({e}); check the file") from e
            for n, record in enumerate(records, 1):
                yield self._record_text(record, field, f"record {n}")
            return
        for n, line in enumerate(self._lines(stream), 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise UserError(f"{self.source.name} line {n} is not valid JSON ({e.msg}); "
                                "JSONL needs one JSON object per line") from e
            yield self._record_text(record, field, f"line {n}")

    def _record_text(self, record, field: str, where: str) -> str:
        if isinstance(record, str) and self.text_field is None:
            return record
        if not isinstance(record, dict) or field not in record:
            keys = ", ".join(record) if isinstance(record, dict) else type(record).__name__
            raise UserError(f"{self.source.name} {where} has no field {field!r} (it has: {keys}); "
                            "pass --text-field with the field that holds the text")
        value = record[field]
        if value is None:
            return ""
        if not isinstance(value, str):
            raise UserError(f"{self.source.name} {where}: field {field!r} holds {type(value).__name__}, "
                            "not text; pass --text-field naming a text field")
        return value


def _chain_one(first, rest):
    yield first
    yield from rest


def _cut_pieces(stream: io.BufferedReader, docs: str, piece_bytes: int) -> Iterator[bytes]:
    """Yield raw byte runs of whole documents, cut at a line end or a blank line.

    Newline bytes never occur inside a multi-byte UTF-8 sequence, so a cut there is always safe
    to decode on its own. A cut at any blank line is one the paragraph splitter would also make,
    so documents do not depend on where pieces were cut (tested: pieces of any size give the
    same store).
    """
    if docs == "file":
        yield stream.read()
        return
    carry = b""
    while True:
        block = stream.read(piece_bytes)
        if not block:
            break
        buf = carry + block if carry else block
        cut = _last_break(buf, docs)
        if cut is None:
            carry = buf
            continue
        start, end = cut
        yield buf[:start]
        carry = buf[end:]
    if carry:
        yield carry


def _last_break(buf: bytes, docs: str) -> tuple[int, int] | None:
    if docs == "line":
        i = buf.rfind(b"\n")
        return None if i < 0 else (i, i + 1)
    window = 1 << 16
    for lo in (max(0, len(buf) - window), 0):
        last = None
        for last in PARAGRAPH_BREAK_BYTES.finditer(buf, lo):
            pass
        if last is not None:
            return last.start(), last.end()
        if lo == 0:
            break
    return None
