"""A labelled table a researcher brings (TREC, SST-2, ... as CSV or TSV with a header): which column is the
label and which are the text, said out loud.

Joining "every other column" into the text reads a file such as ``label,fine,text`` with its fine label
inside the input, and the accuracy that comes out is the label's, not the model's. So the text is the
one column that is not the label, or the columns named with ``--text-column``; a file with several
candidates and no ``--text-column`` is refused with a line naming them. Files are read as ``utf-8-sig``
(a spreadsheet's byte-order mark would otherwise glue itself to the first column's name); ``.tsv``
files, or a header with tabs and no commas, are tab-separated (fields unquoted, as SST-2's).
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from tinylm.errors import UserError

ENCODING = "utf-8-sig"  # a UTF-8 file with or without a byte-order mark


def is_tab_separated(path: Path) -> bool:
    if path.suffix.lower() in (".tsv", ".tab"):
        return True
    with open(path, encoding=ENCODING, errors="replace") as f:
        header = f.readline()
    return "\t" in header and "," not in header


def table_rows(path, tab_separated: bool | None = None):
    """(line number, fields) of a CSV/TSV file; a row with another width than the first is a UserError."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"task file {path} does not exist")
    tab = is_tab_separated(path) if tab_separated is None else tab_separated
    dialect = {"delimiter": "\t", "quoting": csv.QUOTE_NONE} if tab else {}
    with open(path, newline="", encoding=ENCODING) as f:
        width = None
        try:
            for line, row in enumerate(csv.reader(f, **dialect), start=1):
                if not row:
                    continue
                if width is None:
                    width = len(row)
                elif len(row) != width:
                    raise UserError(f"{path} line {line} has {len(row)} columns but line 1 has {width}: every row "
                                    f"of a task {'TSV' if tab else 'CSV'} needs the same columns"
                                    f"{'' if tab else ' (quote fields that hold commas)'}")
                yield line, row
        except csv.Error as e:
            raise UserError(f"{path} is not readable {'TSV' if tab else 'CSV'} ({e})") from None
        except UnicodeDecodeError as e:
            raise UserError(f"{path} is not UTF-8 text ({e.reason} at byte {e.start}); save it as UTF-8") from None


def text_columns_of(path, header: list[str], label_column: str, text_columns: list[str] | None) -> list[str]:
    """The text columns: those named (each must exist and not be the label), or the only other column."""
    shown = ", ".join(header)
    if label_column not in header:
        raise UserError(f"{path} has no {label_column!r} column (its header: {shown}); add one or name the label "
                        "column with --label-column")
    if text_columns:
        unknown = [c for c in text_columns if c not in header]
        if unknown:
            raise UserError(f"{path} has no column {unknown[0]!r} (its header: {shown}); give --text-column one of "
                            "those")
        if label_column in text_columns:
            raise UserError(f"--text-column {label_column!r} is the label column of {path}: the label cannot be "
                            "the input; name the text columns only")
        return list(dict.fromkeys(text_columns))
    candidates = [c for c in header if c != label_column]
    if len(candidates) == 1:
        return candidates
    if not candidates:
        raise UserError(f"{path} has only the label column {label_column!r}; it needs a text column too")
    raise UserError(f"{path} has {len(candidates)} columns beside the label {label_column!r} "
                    f"({', '.join(candidates)}): say which is the text with --text-column (repeat it to join several)")


def read_labelled_table(path, label_column: str = "label", text_columns: list[str] | None = None):
    """(texts, label strings, {"label_column", "text_columns", "format"}) of a CSV/TSV file with a header."""
    path = Path(path)
    tab = path.is_file() and is_tab_separated(path)
    rows = table_rows(path, tab)
    try:
        _, header = next(rows)
    except StopIteration:
        raise UserError(f"{path} is empty") from None
    header = [h.strip() for h in header]
    columns = text_columns_of(path, header, label_column, text_columns)
    at, text_at = header.index(label_column), [header.index(c) for c in columns]
    labels, texts = [], []
    for _, row in rows:
        labels.append(row[at].strip())
        texts.append(" ".join(row[i].strip() for i in text_at))
    if not texts:
        raise UserError(f"{path} has a header but no rows")
    return texts, labels, {"label_column": label_column, "text_columns": columns, "format": "tsv" if tab else "csv"}


def index_labels(raw: list[str], names: list[str] | None = None) -> tuple[np.ndarray, list[str]]:
    """Label strings as ids 0..n-1 over ``names`` (default: the sorted distinct values)."""
    names = sorted(set(raw)) if names is None else names
    index = {n: i for i, n in enumerate(names)}
    return np.asarray([index[v] for v in raw], dtype=np.int64), names
