"""Nested state (optimizer moments, RNG, method states) as safetensors + JSON: no pickles.

`flatten` pulls every tensor out of a nested dict/list into a flat name -> tensor map and leaves a
`{"__tensor__": name}` marker in the JSON-able skeleton; `unflatten` puts them back.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

_MARK = "__tensor__"


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


def save_tree(tree, directory: Path, stem: str) -> None:
    """Write `<stem>.json` and `<stem>.safetensors` into `directory` (a temp dir being assembled)."""
    skeleton, tensors = flatten(tree)
    save_file(tensors, str(Path(directory) / f"{stem}.safetensors"))
    write_json(Path(directory) / f"{stem}.json", skeleton)


def load_tree(directory: Path, stem: str):
    tensors = load_file(str(Path(directory) / f"{stem}.safetensors"))
    return unflatten(json.loads((Path(directory) / f"{stem}.json").read_text()), tensors)


def write_json(path: Path, obj, indent: int | None = 1) -> None:
    """Atomic JSON write: a reader never sees half a file."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(obj, indent=indent, sort_keys=False) + "\n")
    os.replace(tmp, path)
