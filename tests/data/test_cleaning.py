"""Cleaning and cutting: counts are right, and documents never depend on where input was cut."""

from __future__ import annotations

import io

import pytest

from tinylm.data.cleaning import CleaningStats, clean_documents, decode_utf8
from tinylm.data.sources import _cut_pieces


def test_invalid_utf8_is_replaced_and_counted_valid_replacement_chars_are_not():
    stats = CleaningStats()
    text = decode_utf8("ok \ufffd ".encode() + b"\xff\xfe bad \xc3", stats)
    assert text == "ok \ufffd \ufffd\ufffd bad \ufffd"
    assert stats.invalid_utf8_replaced == 3


def test_control_characters_are_stripped_tab_and_newline_kept():
    stats = CleaningStats()
    docs = clean_documents(["a\x00b\tc\x1b[0m\r\nd\x7f\ufeff"], "file", "NFC", stats)
    assert docs == ["ab\tc[0m\nd"]
    assert stats.control_chars_removed == 4


def test_normalisation_forms():
    decomposed = "Cafe\u0301 \ufb01"  # e + combining acute, and the "fi" ligature
    stats = CleaningStats()
    assert clean_documents([decomposed], "file", "NFC", stats) == ["Café \ufb01"]
    assert stats.documents_normalized == 1
    assert clean_documents([decomposed], "file", "NFKC", CleaningStats()) == ["Café fi"]
    assert clean_documents([decomposed], "file", "none", CleaningStats()) == [decomposed]


def test_document_modes():
    text = "one\ntwo\n\n  \nthree\r\n\r\nfour\n"
    assert clean_documents([text], "paragraph", "NFC", CleaningStats()) == ["one\ntwo", "three", "four"]
    assert clean_documents([text], "line", "NFC", CleaningStats()) == ["one", "two", "three", "four"]
    assert clean_documents([text], "file", "NFC", CleaningStats()) == [text.strip().replace("\r\n", "\n")]


def test_empty_records_are_counted_blank_lines_are_not():
    stats = CleaningStats()
    assert clean_documents(["a", "  ", "", "b"], None, "NFC", stats) == ["a", "b"]
    assert stats.empty_documents_dropped == 2
    stats = CleaningStats()
    clean_documents(["a\n\n\n\nb"], "paragraph", "NFC", stats)
    assert stats.empty_documents_dropped == 0


@pytest.mark.parametrize("mode", ["paragraph", "line"])
@pytest.mark.parametrize("piece_bytes", [7, 64, 1000])
def test_documents_do_not_depend_on_piece_size(book, mode, piece_bytes):
    raw = book("PeterPan").encode("utf-8")[:20_000]
    raw += b"\r\n\r\nwindows para\r\n \t\r\nlast\n\n\n"
    whole = clean_documents([raw.decode()], mode, "NFC", CleaningStats())
    pieces = list(_cut_pieces(io.BufferedReader(io.BytesIO(raw)), mode, piece_bytes))
    assert len(pieces) > 1
    cut = [d for p in pieces for d in clean_documents([p.decode()], mode, "NFC", CleaningStats())]
    assert cut == whole
