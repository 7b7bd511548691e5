"""Readers that turn a corrupt or foreign file into one line naming it and the fix.

Each takes ``fix``: what the user should do about a bad file (re-run prepare; delete the partial
checkpoint and resume from the previous one). Nothing here unpickles: weights are safetensors, state
is JSON, recipes are YAML read with ``safe_load``.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

from tinylm.errors import UserError

log = logging.getLogger(__name__)
_CHUNK = 1 << 20


def _reason(e: BaseException) -> str:
    """The first line of an exception, short: one-line errors stay one line."""
    text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return text if len(text) <= 160 else text[:157] + "..."


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks (about 1.5 GB/s: a second for a 124M model)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def read_text(path: Path, fix: str) -> str:
    path = Path(path)
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError as e:
        raise UserError(f"{path} is missing: {fix}") from e
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"{path} cannot be read ({_reason(e)}): {fix}") from e


def read_json(path: Path, fix: str, kind: type | None = dict):
    """The JSON in ``path`` (a ``kind`` when given: a mapping by default)."""
    path = Path(path)
    text = read_text(path, fix)
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        what = "empty" if not text.strip() else f"not valid JSON ({e.msg} at line {e.lineno})"
        raise UserError(f"{path} is {what}: {fix}") from e
    if kind is not None and not isinstance(value, kind):
        raise UserError(f"{path} holds a JSON {type(value).__name__}, not a {kind.__name__}: {fix}")
    return value


def read_yaml(path: Path, fix: str) -> dict:
    """A YAML mapping (a recipe, a run's config.yaml); empty, corrupt or not a mapping is a UserError."""
    import yaml

    path = Path(path)
    text = read_text(path, fix)
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise UserError(f"{path} is not valid YAML ({getattr(e, 'problem', None) or _reason(e)}{where}): {fix}") from e
    if value is None:
        raise UserError(f"{path} is empty: {fix}")
    if not isinstance(value, dict):
        raise UserError(f"{path} holds a YAML {type(value).__name__}, not a mapping of key: value: {fix}")
    return value


def read_jsonl(path: Path, fix: str) -> list[dict]:
    """The records of a JSON-lines file that is appended to while training (`metrics.jsonl`).

    A crash mid-write (kill -9, a full disk) can leave the last line half written: it is dropped, with
    a warning, because it would be rewritten by the step that resumes. A bad line before the last is
    corruption, not a crash, and is refused.
    """
    path = Path(path)
    lines = read_text(path, fix).splitlines()
    records = []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            if not isinstance(record, dict):
                raise ValueError(f"a JSON {type(record).__name__}, not an object")
        except ValueError as e:
            if all(not rest.strip() for rest in lines[i + 1:]):
                log.warning("%s: dropped a torn last line (%d characters; a crash mid-write)", path, len(line))
                break
            raise UserError(f"{path} line {i + 1} is not a JSON record ({_reason(e)}): {fix}") from e
        records.append(record)
    return records


def read_safetensors(path: Path, fix: str, device: str = "cpu") -> dict:
    """Tensors of a safetensors file; truncated, empty or foreign bytes are a UserError."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path} is missing: {fix}")
    if path.stat().st_size < 8:
        raise UserError(f"{path} is {'empty' if not path.stat().st_size else 'truncated'} "
                        f"({path.stat().st_size} bytes): {fix}")
    try:
        return load_file(str(path), device=device)
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise UserError(f"{path} is not a readable safetensors file ({_reason(e)}): {fix}") from e
