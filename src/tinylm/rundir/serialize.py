"""Nested state (optimizer moments, RNG, method states) as safetensors + JSON: no pickles.

`flatten` pulls every tensor out of a nested dict/list into a flat name -> tensor map and leaves a
`{"__tensor__": name}` marker in the JSON-able skeleton; `unflatten` puts them back.

`save_tree(..., checksums={...})` seals a directory: the JSON records the SHA-256 of its own
tensors file and of the other files named (a checkpoint's weights, config, tokenizer), written
last, so a directory whose JSON reads back whole was written whole, and `load_tree` (and
`rundir.checkpoints` for the other files) can tell a flipped byte from a good file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors.torch import save_file

from tinylm.errors import UserError
from tinylm.rundir.files import read_json, read_safetensors, sha256_file

_MARK = "__tensor__"
CHECKSUMS = "sha256"  # key of the skeleton's {file name: hex digest} table; absent in unsealed trees
_FIX = "the directory was damaged after it was written; delete it (or restore it from a copy)"


def flatten(tree, prefix: str = "", tensors: dict | None = None):
    tensors = {} if tensors is None else tensors
    if isinstance(tree, torch.Tensor):
        name = prefix.rstrip(".") or "value"
        tensors[name] = tree.detach().contiguous().cpu()
        return {_MARK: name}, tensors
    if isinstance(tree, dict):
        out = {}
        for k, v in tree.items():
            out[str(k)], _ = flatten(v, f"{prefix}{k}.", tensors)
        return out, tensors
    if isinstance(tree, (list, tuple)):
        return [flatten(v, f"{prefix}{i}.", tensors)[0] for i, v in enumerate(tree)], tensors
    return tree, tensors


def unflatten(skeleton, tensors: dict):
    if isinstance(skeleton, dict):
        if set(skeleton) == {_MARK}:
            return tensors[skeleton[_MARK]]
        return {k: unflatten(v, tensors) for k, v in skeleton.items()}
    if isinstance(skeleton, list):
        return [unflatten(v, tensors) for v in skeleton]
    return skeleton


def save_tree(tree, directory: Path, stem: str, checksums: dict | None = None) -> None:
    """Write `<stem>.safetensors`, then `<stem>.json` (a temp dir being assembled).

    With `checksums` (file name -> SHA-256 of files already written beside it), the JSON also records
    them and the tensors file's own: the seal, written last.
    """
    skeleton, tensors = flatten(tree)
    tensors_path = Path(directory) / f"{stem}.safetensors"
    save_file(tensors, str(tensors_path))
    if checksums is not None:
        # Read back at once (from the page cache): what was written is what gets sealed.
        skeleton = {**skeleton, CHECKSUMS: {**checksums, tensors_path.name: sha256_file(tensors_path)}}
    write_json(Path(directory) / f"{stem}.json", skeleton)


def recorded_checksums(skeleton) -> dict:
    table = skeleton.get(CHECKSUMS) if isinstance(skeleton, dict) else None
    return dict(table) if isinstance(table, dict) else {}


def verify_file(path: Path, checksums: dict, fix: str) -> Path:
    """`path`, after checking it against the SHA-256 recorded for it (when one was)."""
    path = Path(path)
    expected = checksums.get(path.name)
    if expected is not None and path.is_file() and sha256_file(path) != expected:
        raise UserError(f"{path} does not match the checksum recorded when it was written (silent corruption: "
                        f"a flipped byte, a bad copy): {fix}")
    return path


def load_tree(directory: Path, stem: str, fix: str = _FIX):
    """The tree `save_tree` wrote, its tensors file checked against the seal (when sealed).

    A missing, torn or foreign file is a UserError naming it and `fix`; the seal is not returned.
    """
    directory = Path(directory)
    skeleton = read_json(directory / f"{stem}.json", fix)
    checksums = recorded_checksums(skeleton)
    skeleton.pop(CHECKSUMS, None)
    tensors = read_safetensors(directory / f"{stem}.safetensors", fix)
    verify_file(directory / f"{stem}.safetensors", checksums, fix)
    try:
        return unflatten(skeleton, tensors)
    except (KeyError, TypeError) as e:
        raise UserError(f"{directory / (stem + '.safetensors')} does not hold the tensors {stem}.json names "
                        f"(no {e}): {fix}") from e


def write_json(path: Path, obj, indent: int | None = 1) -> None:
    """Atomic JSON write: a reader never sees half a file."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(obj, indent=indent, sort_keys=False) + "\n")
    os.replace(tmp, path)


def write_jsonl(path: Path, records) -> None:
    """Atomic JSON Lines write (per-item results): one compact object per line, all or nothing."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for record in records:
            f.write(json.dumps(record, separators=(",", ":")) + "\n")
    os.replace(tmp, path)
