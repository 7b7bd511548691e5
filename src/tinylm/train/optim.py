"""AdamW with parameter groups, and its state keyed by parameter *name*.

Groups are rebuilt from the model whenever trainability or structure changes (freeze, grow,
rebuild); per-parameter state survives a rebuild because it is carried over by name. Frozen
parameters are simply not in the optimizer, so they get neither updates nor weight decay.
"""

from __future__ import annotations

import torch
from torch import nn

from tinylm.train.recipe import TrainSection


def is_norm_or_bias(name: str, param: nn.Parameter) -> tuple[bool, bool]:
    """(is a norm weight, is a bias): 1-D parameters are norms or biases in every flavour."""
    is_bias = name.endswith(".bias") or name.endswith("_bias")
    return (param.ndim == 1 and not is_bias), is_bias


def is_embedding(name: str) -> bool:
    return "embed" in name or "wpe" in name or "wte" in name


def decays(name: str, param: nn.Parameter, cfg: TrainSection) -> bool:
    norm, bias = is_norm_or_bias(name, param)
    return not ((norm and not cfg.decay_norms) or (bias and not cfg.decay_biases)
                or (is_embedding(name) and not cfg.decay_embeddings))


def param_groups(named_params, cfg: TrainSection, lr_scales: dict[str, float] | None = None) -> list[dict]:
    """Trainable parameters grouped by (weight decay or not, learning-rate scale); names kept for state I/O."""
    lr_scales = lr_scales or {}
    groups: dict[tuple[bool, float], dict] = {}
    for name, p in named_params:
        if not p.requires_grad:
            continue
        key = (decays(name, p, cfg), float(lr_scales.get(name, 1.0)))
        group = groups.setdefault(key, {"params": [], "names": [], "weight_decay": cfg.weight_decay if key[0] else 0.0,
                                        "lr": cfg.lr, "base_lr": cfg.lr, "lr_scale": key[1]})
        group["params"].append(p)
        group["names"].append(name)
    return [groups[k] for k in sorted(groups, key=lambda k: (not k[0], k[1]))]


def build_optimizer(model: nn.Module, cfg: TrainSection, device: torch.device,
                    lr_scales: dict[str, float] | None = None, precision: str = "fp32") -> torch.optim.AdamW:
    """AdamW over the trainable parameters; `precision` is the run's resolved one (`Run.precision`)."""
    groups = param_groups(model.named_parameters(), cfg, lr_scales)
    if not groups:
        raise ValueError("no trainable parameters")
    # Fused AdamW: one kernel over all tensors. On CUDA and on the CPU (torch >= 2.4) it is several
    # times faster than the foreach path (bench/throughput.py); fp16's GradScaler keeps foreach on CPU.
    fused = device.type == "cuda" or (device.type == "cpu" and precision != "fp16")
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=tuple(cfg.betas), eps=cfg.eps, fused=fused or None,
                             foreach=None if fused else True)


def state_by_name(optimizer: torch.optim.Optimizer) -> dict[str, dict]:
    """Per-parameter optimizer state keyed by parameter name (tensors shared, not copied)."""
    out = {}
    for group in optimizer.param_groups:
        for name, p in zip(group["names"], group["params"]):
            if p in optimizer.state and optimizer.state[p]:
                out[name] = dict(optimizer.state[p])
    return out


def load_state_by_name(optimizer: torch.optim.Optimizer, state: dict[str, dict]) -> None:
    """Inverse of `state_by_name`; parameters absent from `state` start fresh."""
    optimizer.state.clear()
    for group in optimizer.param_groups:
        for name, p in zip(group["names"], group["params"]):
            if name in state:
                on_device = group.get("fused") or group.get("capturable")  # their step counts live on the device
                optimizer.state[p] = {k: (v.to(p.device) if k != "step" or on_device else v.clone())
                                      for k, v in state[name].items()}
