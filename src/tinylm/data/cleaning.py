"""Text cleaning and document splitting, shared by the tokenizer trainer and the encode workers.

Everything here is a pure function of its input so that a corpus cut into pieces at document
boundaries cleans to exactly the same documents as the whole corpus would: that is what lets
``prepare`` stream and parallelise while staying byte-for-byte deterministic.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, fields

DOC_MODES = ("paragraph", "line", "file")
NORMALIZATIONS = ("NFC", "NFKC", "none")

# C0 and C1 control characters except tab and newline, plus the byte-order mark. Carriage returns
# are turned into newlines first (Windows and old Mac line ends), so they are not counted as dropped.
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ufeff]")
_CR = re.compile("\r\n?")
# A paragraph ends at a line holding only whitespace. The byte version finds safe cut points in
# raw input; any cut it finds is also a split point of the text version (see sources.py).
PARAGRAPH_BREAK = re.compile(r"\n[ \t\r\f\v]*\n")
PARAGRAPH_BREAK_BYTES = re.compile(rb"\n[ \t\r\f\v]*\n")
_REPLACEMENT_BYTES = "\ufffd".encode()


@dataclass
class CleaningStats:
    """What cleaning changed or dropped; summed over pieces and reported in meta.json."""

    invalid_utf8_replaced: int = 0  # undecodable byte sequences, each replaced by U+FFFD
    control_chars_removed: int = 0
    documents_normalized: int = 0  # documents whose text Unicode normalisation changed
    empty_documents_dropped: int = 0
    duplicate_documents_dropped: int = 0

    def add(self, other: "CleaningStats") -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    def as_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def decode_utf8(data: bytes, stats: CleaningStats) -> str:
    """Decode UTF-8, replacing (and counting) invalid sequences instead of failing.

    A strict decode is tried first because it is the common case and costs nothing extra; on
    failure the number of replacements is the number of U+FFFD in the result minus those that
    were already validly encoded in the input.
    """
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("utf-8", "replace")
        stats.invalid_utf8_replaced += text.count("\ufffd") - data.count(_REPLACEMENT_BYTES)
        return text


def clean_document(text: str, normalize: str, stats: CleaningStats) -> str:
    """Normalise the Unicode form and strip control characters (tab and newline stay) and edges."""
    if "\r" in text:  # records (CSV/JSONL) arrive here without passing through split_documents
        text = _CR.sub("\n", text)
    if normalize != "none" and not unicodedata.is_normalized(normalize, text):
        text = unicodedata.normalize(normalize, text)
        stats.documents_normalized += 1
    text, removed = _CONTROL.subn("", text)
    stats.control_chars_removed += removed
    return text.strip()


def split_documents(text: str, mode: str) -> list[str]:
    """Cut raw text into documents: ``paragraph`` (blank-line separated), ``line`` or ``file``.

    Line ends are unified first. Cutting happens before cleaning so that a control character can
    never merge or split documents differently depending on where the input was cut into pieces.
    """
    if "\r" in text:
        text = _CR.sub("\n", text)
    if mode == "paragraph":
        return PARAGRAPH_BREAK.split(text)
    if mode == "line":
        return text.split("\n")
    if mode == "file":
        return [text]
    raise ValueError(f"unknown document mode {mode!r}; use one of {DOC_MODES}")


def clean_documents(texts: list[str], mode: str | None, normalize: str, stats: CleaningStats) -> list[str]:
    """Cut raw texts into documents, clean each, and keep the non-empty ones.

    ``mode=None`` means each text already is one document (a CSV/JSONL record). Empty records and
    empty files are counted as dropped; blank lines in ``line``/``paragraph`` mode are separators,
    not documents, so they are not.
    """
    docs: list[str] = []
    for text in texts:
        parts = [text] if mode is None else split_documents(text, mode)
        for part in parts:
            doc = clean_document(part, normalize, stats)
            if doc:
                docs.append(doc)
            elif mode is None or mode == "file":
                stats.empty_documents_dropped += 1
    return docs
