"""Data parallelism under `torchrun`: one process per device, DDP (or FSDP: `tinylm.train.fsdp`), rank 0 writes.

Every rank draws rows `rank::world` of the same global batch (the samplers guarantee it), so a
run's data stream does not depend on how many processes share it.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


@dataclass
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.size > 1

    def barrier(self) -> None:
        if self.active:
            dist.barrier()


def init_world(device_kind: str) -> World:
    """Join the process group when launched by torchrun (WORLD_SIZE > 1); else a world of one."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return World()
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device_kind == "cuda" else "gloo")
    return World(rank=dist.get_rank(), size=dist.get_world_size(), local_rank=int(os.environ.get("LOCAL_RANK", 0)))


def wrap(model: nn.Module, world: World, device: torch.device, sharded: nn.Module | None = None):
    """The objective as the loop calls it: itself alone, DDP's wrapper, or, for a model `sharded` by FSDP
    (`tinylm.train.fsdp`), a thin one with the same `no_sync`."""
    if not world.active:
        return model
    if sharded is not None:
        from tinylm.train.fsdp import ShardedObjective
        return ShardedObjective(model, sharded)
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids)


def full(tensor: torch.Tensor) -> torch.Tensor:
    """A whole tensor: a sharded one (FSDP's DTensor) gathered from every rank (a collective), else itself."""
    from torch.distributed.tensor import DTensor

    return tensor.full_tensor() if isinstance(tensor, DTensor) else tensor


def weights_digest(model: nn.Module) -> str:
    """Of the whole weights (gathered, under FSDP: a collective)."""
    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(full(tensor).detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


def gather_digests(model: nn.Module, world: World) -> list[str]:
    """Every rank's weight digest (a consistency check logged at the end of a run)."""
    mine = weights_digest(model)
    if not world.active:
        return [mine]
    out = [None] * world.size
    dist.all_gather_object(out, mine)
    return out


def any_rank(flag: bool, world: World) -> bool:
    """True on every rank if any rank says so (a Ctrl-C on one process stops all at the same step)."""
    if not world.active:
        return flag
    device = "cuda" if dist.get_backend() == "nccl" else "cpu"
    t = torch.tensor([1 if flag else 0], dtype=torch.int64, device=device)
    dist.all_reduce(t)
    return int(t.item()) > 0


class StopVote:
    """Every rank's stop request (a signal may reach only some processes), agreed on at every step.

    Each step's end hands this rank's flag to an asynchronous all-reduce on a CPU (gloo) group and reads
    the previous step's result, which has long arrived: no host-device sync, no wait on the slowest
    rank beyond the step's own gradient all-reduce. All ranks read the same sums at the same step, so
    they stop together, one step after the first request. A world of one reads its flag directly.
    """

    def __init__(self, world: World):
        self.world = world
        self.pending = None  # (work, tensor) of the vote handed over at the previous step

    def __call__(self, flag: bool) -> bool:
        if not self.world.active:
            return flag
        agreed = self._result()
        if not agreed:
            vote = torch.tensor([1 if flag else 0], dtype=torch.int64)
            self.pending = (dist.all_reduce(vote, group=_cpu_group(), async_op=True), vote)
        return agreed

    def _result(self) -> bool:
        if self.pending is None:
            return False
        work, vote = self.pending
        work.wait()
        self.pending = None
        return int(vote.item()) > 0

    def close(self) -> None:
        """Collect the vote still under way (every rank handed over the same ones)."""
        if self.world.active:
            self._result()


_CPU_GROUP = None


def _cpu_group():
    """A gloo group beside the default one (nccl on GPUs) for host-side flags; made once per process."""
    global _CPU_GROUP
    if _CPU_GROUP is None:
        _CPU_GROUP = dist.new_group(backend="gloo") if dist.get_backend() != "gloo" else dist.group.WORLD
    return _CPU_GROUP
