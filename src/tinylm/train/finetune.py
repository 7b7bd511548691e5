"""Sequence-classification fine-tuning of an encoder: the committee paper's recipe, as a small loop.

The paper (appendix 2-3) fine-tunes with cross-entropy, AdamW (its "L2 regularisation" alpha is
AdamW's weight decay), mini-batches of 32, a linear decay to zero without warm-up, and at least 50
epochs; eta = 5e-5 and alpha = 1e-2 are its most common values (table 8's committee used 1e-4).
Those are the defaults. Pretraining is compared against "the same architecture from scratch", so
both start from one function, ``classifier_from``, that differs only in whether weights are copied.

Fine-tuning sets are a few thousand rows, so the whole set lives in memory as tensors; this loop is
kept apart from the pretraining loop (no token store, no checkpoints mid-way, no methods).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from tinylm.errors import UserError
from tinylm.models import ModelConfig, build_model

log = logging.getLogger(__name__)


@dataclass
class FinetuneConfig:
    epochs: float = 50  # the paper: "at least 50 epochs"
    lr: float = 5e-5  # the paper's eta for most tables (table 8 used 1e-4)
    weight_decay: float = 1e-2  # the paper's alpha (AdamW's decoupled L2)
    batch_size: int = 32  # the paper's mini-batch
    max_steps: int | None = None  # cap for tiny runs; the schedule decays over the steps really taken
    eval_batch_size: int = 128

    def validate(self) -> None:
        if not self.epochs > 0 or not self.lr > 0 or self.weight_decay < 0 or self.batch_size < 1:
            raise UserError("fine-tuning needs epochs > 0, lr > 0, weight decay >= 0 and batch size >= 1")
        if self.max_steps is not None and self.max_steps < 1:
            raise UserError(f"--max-steps must be at least 1, got {self.max_steps}")


def require_encoder(config: ModelConfig) -> None:
    if config.kind != "encoder":
        raise UserError(f"fine-tuning for classification needs an encoder, got a {config.flavour} decoder: give a "
                        "run trained with flavour bert, an encoder preset (bert-1), or a spec with --flavour bert")


def classifier_from(pretrained: nn.Module | None, config: ModelConfig, n_classes: int, seed: int) -> nn.Module:
    """An encoder with an ``n_classes`` head: the pretrained weights copied in (pooler and classifier
    fresh), or, with ``pretrained=None``, the same architecture from scratch. The fresh parts are drawn
    from ``seed``, so seeds differ only in what the seed controls."""
    require_encoder(config)
    torch.manual_seed(seed)
    model = build_model(config.replace(n_classes=int(n_classes)))
    if pretrained is not None:
        source = {k: v for k, v in pretrained.state_dict().items()
                  if not k.startswith(("pooler.", "classifier."))}  # an earlier fine-tune's head is not kept
        missing, unexpected = model.load_state_dict(source, strict=False)
        fresh = {k for k in missing if not k.startswith(("pooler.", "classifier."))}
        if fresh or unexpected:
            raise UserError(f"pretrained weights do not fit the classifier (missing {sorted(fresh)[:3]}, unexpected "
                            f"{sorted(unexpected)[:3]}); fine-tune a model of the same architecture")
    return model


def finetune(model: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor, labels: torch.Tensor,
             cfg: FinetuneConfig, seed: int = 0, on_epoch=None) -> dict:
    """Train ``model.classify`` on the tensors in place; returns {"steps", "final_loss"}."""
    cfg.validate()
    n = len(labels)
    steps_per_epoch = math.ceil(n / cfg.batch_size)
    total = max(1, math.ceil(cfg.epochs * steps_per_epoch))
    if cfg.max_steps is not None:
        total = min(total, cfg.max_steps)
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (no_decay if p.ndim < 2 or "norm" in name else decay).append(p)
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: max(0.0, 1.0 - s / total))  # linear, no warm-up
    gen = torch.Generator().manual_seed(int(seed))
    torch.manual_seed(seed)  # dropout
    model.train()
    step, loss_value = 0, float("nan")
    while step < total:
        order = torch.randperm(n, generator=gen)
        for start in range(0, n, cfg.batch_size):
            rows = order[start : start + cfg.batch_size]
            logits = model.classify(input_ids[rows], attention_mask[rows])
            loss = F.cross_entropy(logits, labels[rows])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            loss_value = float(loss.detach())
            if step >= total:
                break
        if on_epoch is not None:
            on_epoch(step, total, loss_value)
    if not math.isfinite(loss_value):
        raise UserError(f"fine-tuning diverged (loss {loss_value}); lower --lr")
    model.eval()
    return {"steps": step, "final_loss": loss_value}


@torch.no_grad()
def predict_logits(model: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                   batch_size: int = 128) -> torch.Tensor:
    """Raw classification logits (B, n_classes) in eval mode: what a soft committee sums."""
    model.eval()
    out = [model.classify(input_ids[i : i + batch_size], attention_mask[i : i + batch_size]).float()
           for i in range(0, len(input_ids), batch_size)]
    return torch.cat(out)


def accuracy(logits: torch.Tensor, labels) -> float:
    labels = torch.as_tensor(np.asarray(labels))
    return float((logits.argmax(-1) == labels).float().mean())
