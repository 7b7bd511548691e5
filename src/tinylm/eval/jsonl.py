"""JSON Lines with errors a user can act on: the file and line of the first bad record."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

from tinylm.errors import UserError


def read_jsonl(path: Path, what: str) -> Iterator[tuple[int, dict]]:
    """(line number, object) for each non-blank line of ``path``.

    Strings may hold newlines (dialogues): in JSON Lines they are escaped (``\\n``), so splitting
    the file on newlines is exact. A file with no records is an error, as is a record that is not
    a JSON object.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise UserError(f"{path} is not UTF-8 text ({e}); give a {what} JSONL file") from e
    except OSError as e:
        raise UserError(f"cannot read {path} ({e.strerror}); give a {what} JSONL file") from e
    seen = False
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise UserError(f"{path}:{number}: not valid JSON ({e.msg} at column {e.colno}); fix or remove the line") from e
        if not isinstance(obj, dict):
            raise UserError(f"{path}:{number}: expected a JSON object per line, got {type(obj).__name__}; "
                            f"each line of a {what} file is one object")
        seen = True
        yield number, obj
    if not seen:
        raise UserError(f"{path} is empty: a {what} file needs one JSON object per line")
