"""FLOPs accounting, so runs are compared at equal compute rather than equal steps.

Per trained token (Kaplan et al. 2020; Chinchilla): 6 x the matmul parameters that train
(forward 2, backward 4) + 2 x the frozen ones (forward only; input gradients through frozen
layers are refined in the incremental-training issue) + attention's 6 x layers x context x width.
Embedding lookups are not matmuls; a tied output layer is one.
"""

from __future__ import annotations

from torch import nn


def matmul_parameters(model: nn.Module) -> tuple[int, int]:
    """(trainable, frozen) parameters used in matrix multiplies per token."""
    trainable = frozen = 0
    for module in model.modules():
        if isinstance(module, nn.Linear):
            n = module.weight.numel()
            if module.weight.requires_grad:
                trainable += n
            else:
                frozen += n
    if getattr(model, "lm_head", None) is None and getattr(model, "embed_tokens", None) is not None:
        w = model.embed_tokens.weight  # tied output projection: a (d x V) matmul per token
        if w.requires_grad:
            trainable += w.numel()
        else:
            frozen += w.numel()
    return trainable, frozen


def attention_width(config) -> int:
    head_dim = getattr(config, "head_dim", None) or config.d_model // config.n_heads
    return config.n_heads * head_dim


def flops_per_token(model: nn.Module, seq_len: int) -> float:
    """Training FLOPs per token for the model as it is now (trainability included)."""
    trainable, frozen = matmul_parameters(model)
    cfg = model.config
    attention = 6 * cfg.n_layers * seq_len * attention_width(cfg)
    return 6.0 * trainable + 2.0 * frozen + attention


def forward_flops_per_token(model: nn.Module, seq_len: int) -> float:
    """Inference FLOPs per token (used for teachers and evaluation)."""
    trainable, frozen = matmul_parameters(model)
    return 2.0 * (trainable + frozen) + 2 * model.config.n_layers * seq_len * attention_width(model.config)
