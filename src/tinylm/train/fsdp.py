"""Fully sharded data parallelism (`train.parallel: fsdp`, PyTorch's FSDP2) under torchrun.

Each of N processes holds 1/N of every weight, gradient and AdamW moment (DTensors sharded on their
first dimension); a block's weights are gathered just before its forward and backward and freed
after. `fully_shard` goes on every block, then on the root (embeddings, final norm, head), as
torchtitan does: one all-gather per block, overlapped with the previous block's compute.

The Run's primitives keep working by one rule: a change of structure or trainability (grow,
truncate, set_trainable, rebuild_model) gathers the full weights, builds a plain model of the new
shape from them and shards it again (`gathered`, then `shard`). FSDP2 cannot un-shard a module
or adopt blocks added after it was sharded, and a fresh sharding is what a run resumed with that
structure would have, so the two cannot drift apart. AdamW's state is kept by parameter name across
it (the shards keep their layout: same mesh, same first-dimension split). These events are rare
(a few per run), and each costs one all-gather and one broadcast of the weights.

Values drawn on one process (a reinit, a grown block) are rank 0's, scattered: every rank's RNG
normally agrees, but the sharded result must not depend on it.
"""

from __future__ import annotations

import contextlib

import torch
import torch.distributed as dist
from torch import nn

from tinylm.models import build_model
from tinylm.precision import torch_dtype
from tinylm.train.distributed import full

_MESHES: dict[str, object] = {}


def _mesh(device: torch.device, size: int):
    """One 1-D device mesh per process and device type: DTensors of every sharding must share it."""
    from torch.distributed.device_mesh import init_device_mesh

    if device.type not in _MESHES:
        _MESHES[device.type] = init_device_mesh(device.type, (size,))
    return _MESHES[device.type]


def is_sharded(tensor) -> bool:
    from torch.distributed.tensor import DTensor

    return isinstance(tensor, DTensor)


def shard(model: nn.Module, size: int, device: torch.device, precision: str) -> nn.Module:
    """`fully_shard` every block, then the root, in place; rank 0's weights are the ones sharded (as DDP
    broadcasts them at construction). `precision` (resolved) sets the policy: bf16/fp16 weights for
    compute and all-gathers, gradients reduced in fp32; fp32 leaves everything in fp32."""
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    with torch.no_grad():
        for p in model.parameters():
            dist.broadcast(p.data, src=0)
    compute = torch_dtype(precision)
    policy = MixedPrecisionPolicy(param_dtype=compute, reduce_dtype=torch.float32) \
        if compute != torch.float32 else MixedPrecisionPolicy()
    mesh = _mesh(device, size)
    for block in model.layers:
        fully_shard(block, mesh=mesh, mp_policy=policy)
    fully_shard(model, mesh=mesh, mp_policy=policy)
    return model


def full_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The model's whole state dict as plain tensors (a collective under FSDP: every rank must call it)."""
    return {k: full(v).detach().clone() for k, v in model.state_dict().items()}


def gathered(model: nn.Module, into: nn.Module | None = None) -> nn.Module:
    """A plain (unsharded) model with `model`'s full weights and frozen flags: `into` when given (built by the
    caller, as deep sleep builds a new model), else a copy of the same structure built without drawing from
    torch's RNG (a run that is sharded again must draw what a 1-process run draws)."""
    weights = full_state(model)
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    if into is None:
        with torch.random.fork_rng(devices=[]), torch.device("meta"):
            into = build_model(type(model.config).from_dict(model.config.to_dict()))
        into = into.to_empty(device="cpu")
        into.reset_buffers_()
        into.init_seed = model.init_seed
    into.load_state_dict(weights)
    for n, p in into.named_parameters():
        p.requires_grad_(n not in frozen)
    return into


def like(target: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """`value` (a full tensor) laid out as `target`: rank 0's value scattered into shards when `target` is
    sharded, else `value` itself on its device and dtype."""
    if not is_sharded(target) or is_sharded(value):
        return value
    from torch.distributed.tensor import distribute_tensor

    value = value.to(device=target.device, dtype=target.dtype)
    return distribute_tensor(value, target.device_mesh, target.placements)


@torch.no_grad()
def set_weights(model: nn.Module, weights: dict[str, torch.Tensor]) -> None:
    """Copy full (or identically sharded) `weights` into the model's tensors, in state-dict order on every rank."""
    for name, tensor in model.state_dict().items():
        tensor.copy_(like(tensor, weights[name]))


def shard_state(state: dict[str, dict], params: dict[str, nn.Parameter]) -> dict[str, dict]:
    """AdamW state by parameter name, each moment laid out as its parameter (full tensors from a 1-process
    checkpoint or a snapshot are scattered); step counts and other tensors as they are."""
    out = {}
    for name, entry in state.items():
        p = params.get(name)
        out[name] = {k: like(p, v) if p is not None and is_sharded(p) and tuple(v.shape) == tuple(p.shape) else v
                     for k, v in entry.items()}
    return out


def full_tree(tree):
    """A nested dict/list with every sharded tensor gathered whole (collective)."""
    if isinstance(tree, dict):
        return {k: full_tree(v) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return [full_tree(v) for v in tree]
    return full(tree).detach().clone() if isinstance(tree, torch.Tensor) else tree


def reinit_full(model: nn.Module, name: str, param: nn.Parameter) -> None:
    """The model's own init for a sharded parameter: drawn whole on the CPU (as a 1-process run draws it),
    then rank 0's draw scattered into the shards."""
    fresh = torch.empty(tuple(param.shape), dtype=torch.float32)
    model.init_parameter_(name, fresh)
    with torch.no_grad():
        param.copy_(like(param, fresh))


class ShardedObjective:
    """The objective of a sharded model, with DDP's `no_sync` for gradient accumulation: micro-batches but
    the last keep their gradients unsharded and unreduced; the last one reduce-scatters their sum."""

    def __init__(self, objective: nn.Module, model: nn.Module):
        self.objective, self.model = objective, model

    def __call__(self, *args, **kwargs):
        return self.objective(*args, **kwargs)

    @contextlib.contextmanager
    def no_sync(self):
        self.model.set_requires_gradient_sync(False)
        try:
            yield
        finally:
            self.model.set_requires_gradient_sync(True)


def grad_scaler(device: torch.device, enabled: bool):
    """fp16's loss scaler for sharded gradients: the inf check is agreed across ranks (each sees only its shard)."""
    from torch.distributed.fsdp.sharded_grad_scaler import ShardedGradScaler

    return ShardedGradScaler(device.type, enabled=enabled)
