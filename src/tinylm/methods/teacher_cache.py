"""distill's optional cache: the teachers' top-k mean logits of every training batch, on disk.

The training stream is a pure function of (data settings, seed, batch position), so the teachers'
output for optimizer step s, micro-batch m is too. A re-run or resume of the same stream (another
student seed, a student hyperparameter sweep, a crashed run) then reads the k largest mean logits and
their token ids instead of running the teachers. One safetensors file per step, written atomically at
the step's end (no pickles); the directory name is a hash of everything the entries depend on
(teachers' checkpoints, data section, store, batch shape, processes, precision, k), and every entry
also keeps the input ids it was computed for, so a stale or foreign entry is recomputed, never used.

Size: B x T x k x 8 bytes per micro-batch (float32 values, int32 ids): 64 KB for a 4 x 32 batch at
k = 64, 8 MB for BabyLlama-2's 128 x 128 batches.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from tinylm.precision import run_precision

FORMAT = 1


def cache_key(run, teachers: list, top_k: int) -> dict:
    """Everything a cached entry depends on (hashed into the cache's directory name)."""
    recipe = run.recipe
    store = getattr(run, "store", None)
    return {
        "format": FORMAT, "top_k": int(top_k),
        "teachers": [_weights_identity(Path(t.checkpoint)) for t in teachers],
        "data": dataclasses.asdict(recipe.data),
        "store_meta_sha256": (hashlib.sha256((store.path / "meta.json").read_bytes()).hexdigest()
                              if store is not None else None),
        "batch_size": recipe.train.batch_size, "grad_accum": recipe.train.grad_accum,
        "processes": run.world.size, "rank": run.world.rank, "precision": run_precision(run),
    }


def _weights_identity(checkpoint: Path) -> list:
    """A checkpoint's identity without hashing gigabytes: its path and its weight files' sizes and mtimes."""
    files = sorted(p for p in checkpoint.glob("*") if p.suffix in (".safetensors", ".bin") or p.name.endswith(".json"))
    return [str(checkpoint.resolve())] + [[p.name, p.stat().st_size, p.stat().st_mtime_ns] for p in files]


class TeacherCache:
    """Top-k (values, token ids) per (step, micro-batch), under ``root/<hash of key>/``."""

    def __init__(self, root: Path, key: dict, device: torch.device):
        digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
        self.dir = Path(root) / digest
        self.dir.mkdir(parents=True, exist_ok=True)
        key_file = self.dir / "key.json"
        if not key_file.exists():
            key_file.write_text(json.dumps(key, indent=1))
        self.device = device
        self.top_k = int(key["top_k"])
        self._step: int | None = None   # the step whose file is in `_entries`
        self._entries: dict[str, torch.Tensor] = {}
        self._dirty = False
        self.hits = self.misses = 0

    def _file(self, step: int) -> Path:
        return self.dir / f"step-{step:08d}.safetensors"

    def _open(self, step: int) -> None:
        if self._step == step:
            return
        path = self._file(step)
        try:
            self._entries = load_file(str(path), device=str(self.device)) if path.is_file() else {}
        except Exception as e:  # a torn or foreign entry (SafetensorError, OSError): a cache, so recompute it
            logging.getLogger(__name__).warning("%s is unreadable (%s): recomputing its teachers' targets", path,
                                                str(e).splitlines()[0] if str(e) else type(e).__name__)
            self._entries = {}
        self._step, self._dirty = step, False

    def lookup(self, step: int, micro: int, input_ids: torch.Tensor):
        """(values, ids) stored for this batch, or None (not cached, or cached for other inputs)."""
        self._open(step)
        ids = self._entries.get(f"{micro}.input_ids")
        if ids is None or ids.shape != input_ids.shape or not torch.equal(ids, input_ids):
            self.misses += 1
            return None
        self.hits += 1
        return self._entries[f"{micro}.values"], self._entries[f"{micro}.indices"].long()

    def put(self, step: int, micro: int, input_ids: torch.Tensor, values: torch.Tensor, indices: torch.Tensor):
        self._open(step)
        self._entries.update({f"{micro}.input_ids": input_ids.detach(), f"{micro}.values": values.detach().float(),
                              f"{micro}.indices": indices.detach().to(torch.int32)})
        self._dirty = True

    def flush(self) -> None:
        """Write the current step's entries if any were computed (temp file + rename: never half a file)."""
        if not self._dirty or self._step is None:
            return
        path = self._file(self._step)
        tmp = path.with_name(f".tmp-{os.getpid()}-{path.name}")
        save_file({k: v.contiguous().cpu() for k, v in self._entries.items()}, str(tmp))
        os.replace(tmp, path)
        self._dirty = False

    def take_counts(self) -> tuple[int, int]:
        """(hits, misses) since the last call."""
        counts = (self.hits, self.misses)
        self.hits = self.misses = 0
        return counts
