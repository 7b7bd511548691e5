"""Sharded tensors on disk: every process writes its own part, as safetensors; any number of processes reads.

A checkpoint of a run sharded over N processes (`train.parallel: fsdp`) keeps its weights and AdamW
moments in `shards/`: `shard-0000R-model-00001-of-00001.safetensors`, one file per rank R (1-based),
each holding that rank's slices, with the slice offsets in the file's JSON header. It is written
and read with `torch.distributed.checkpoint` (DCP) through its Hugging Face storage
(`HuggingFaceStorageWriter` / `HuggingFaceStorageReader`), not DCP's default file system storage,
whose `.metadata` file is a pickle and whose loader `torch.load`s any non-tensor entry.

Checked in torch 2.13's source (torch/distributed/checkpoint/hf_storage.py, _hf_utils.py): the HF reader
builds DCP's metadata from the safetensors headers (`safe_open`, `json.loads` of the sharding info),
reads the data with `safe_open`, and writes no metadata file for a distributed save; the default load
planner unpickles only non-tensor ("bytes") entries, which the HF reader never lists, and tinylm
stores tensors only. The tests hold it to that: `pickle.load(s)` and `torch.load` raise in every process
of a sharded save and resume.

Reading needs no process group (`no_dist`): a sharded target (a DTensor) gets only its own slices, a
plain one the whole tensor, so a checkpoint of 2 processes resumes on 1, 2 or 4, and `tinylm eval` reads
the weights of one whole. Writing is a collective: every rank calls `write_shards` with its tensors
(DTensors by their local slices; plain tensors, the same on every rank, once).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch

from tinylm.errors import UserError

SHARDS = "shards"  # the folder of a checkpoint that holds them


def shard_files(directory: Path) -> list[Path]:
    return sorted(Path(directory).glob("*.safetensors"))


def write_shards(tensors: dict[str, torch.Tensor], directory: Path) -> None:
    """Every rank's part of `tensors` into `directory` (which must exist): a collective over the default group."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint import HuggingFaceStorageWriter

    dcp.save({k: v.detach() for k, v in tensors.items()},
             storage_writer=HuggingFaceStorageWriter(str(directory), save_distributed=True))


def _reader(directory: Path):
    from torch.distributed.checkpoint import HuggingFaceStorageReader

    return HuggingFaceStorageReader(str(directory))


def shard_index(directory: Path, fix: str) -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
    """{name: (whole shape, dtype)} of every tensor the shards hold, from their headers alone."""
    if not shard_files(directory):
        raise UserError(f"{directory} holds no shard files: {fix}")
    try:
        metadata = _reader(directory).read_metadata()
    except Exception as e:  # a torn or foreign header (safetensors raises its own types)
        raise UserError(f"{directory} holds a shard file that does not read as safetensors "
                        f"({type(e).__name__}: {e}): {fix}") from e
    return {k: (tuple(m.size), m.properties.dtype) for k, m in metadata.state_dict_metadata.items()}


def read_shards(directory: Path, targets: dict[str, torch.Tensor], fix: str) -> None:
    """Fill `targets` in place from the shards: a sharded target its own slices, a plain one all of it."""
    import torch.distributed.checkpoint as dcp

    index = shard_index(directory, fix)
    missing = sorted(set(targets) - set(index))
    if missing:
        raise UserError(f"{directory} does not hold {missing[:3]} ({len(missing)} missing): {fix}")
    for name, target in targets.items():
        if tuple(target.shape) != index[name][0]:
            raise UserError(f"{directory} holds {name} of shape {list(index[name][0])}, not "
                            f"{list(target.shape)}: {fix}")
    try:
        with warnings.catch_warnings():  # "assuming the intent is to load in a single process": it is
            warnings.simplefilter("ignore", UserWarning)
            dcp.load(targets, storage_reader=_reader(directory), no_dist=True)
    except Exception as e:  # a truncated file, a chunk that is not there (DCP wraps them in its own types)
        raise UserError(f"{directory} could not be read whole ({type(e).__name__}: {str(e)[:200]}): {fix}") from e


def read_whole(directory: Path, prefix: str, fix: str) -> dict[str, torch.Tensor]:
    """Every tensor whose name starts with `prefix`, whole, by its name without the prefix."""
    index = shard_index(directory, fix)
    targets = {k: torch.empty(shape, dtype=dtype) for k, (shape, dtype) in index.items() if k.startswith(prefix)}
    read_shards(directory, targets, fix)
    return {k[len(prefix):]: v for k, v in targets.items()}
