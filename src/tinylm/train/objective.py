"""The training objective: the model and its cross-entropy as one module.

The loop calls `Objective`, not the model, so that `torch.compile` sees the loss too: compiled
alone, the model hands full-vocabulary logits to an eager cross-entropy, which on a CPU spends
longer in its log-softmax and backward (passes over batch x vocabulary floats) than in the head's
matmuls; compiled with the model, the casts, log-sum-exp and gradient fuse into a few kernels
(bench/cpu_levers.py). The loss itself is `cross_entropy.py`'s. The logits leave the module only
when a method asks for them (`Method.on_loss`), so the plain objective never returns (nor keeps a
gradient buffer for) them. A method that supplies soft targets (distillation's teachers) has their
KL term computed here too, fused with the cross-entropy (`soft_targets.py`). A masked LM's head runs
at its labelled positions only when nothing asks for the logits (`Encoder.forward`'s `at`): the loss is
the same mean over the same positions.
"""

from __future__ import annotations

import torch
from torch import nn

from tinylm.losses.cross_entropy import cross_entropy
from tinylm.losses.labelled import labelled_logits
from tinylm.losses.soft_targets import SoftTargets, cross_entropy_kl


def lm_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over the positions that have a label (-100 marks none), in float32."""
    return cross_entropy(logits, labels)


class Objective(nn.Module):
    """`(loss, CE, KL or None, logits or None)` for a batch: next-token (decoder) or masked-token
    (encoder) loss. Without soft targets the loss is the CE; with them it is (1 − w)·CE + w·T²·KL.

    Holds the model as its only child, so its parameters are the model's (DDP and the optimizer see
    the same tensors) and a rebuilt model means a new `Objective` (`Run._refresh`).
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None, labels: torch.Tensor,
                return_logits: bool = False, soft_targets: SoftTargets | None = None):
        if not return_logits and soft_targets is None and not torch.compiler.is_compiling():
            # a masked LM heads its labelled positions only (losses/labelled.py); compiled, the full head
            # keeps one graph (the positions' count changes with every batch)
            ce = lm_loss(*labelled_logits(self.model, input_ids, attention_mask, labels))
            return ce, ce, None, None
        logits = self.model(input_ids, attention_mask)
        kept = logits if return_logits else None
        if soft_targets is None:
            ce = lm_loss(logits, labels)
            return ce, ce, None, kept
        ce, kl = cross_entropy_kl(logits, labels, soft_targets)
        w, t = soft_targets.weight, soft_targets.temperature
        return (1.0 - w) * ce + (w * t * t) * kl, ce, kl, kept
