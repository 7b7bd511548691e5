"""The training objective: the model and its cross-entropy as one module.

The loop calls `Objective`, not the model, so that `torch.compile` sees the loss too: compiled
alone, the model hands full-vocabulary logits to an eager cross-entropy, which on a CPU spends
longer in its log-softmax and backward (passes over batch x vocabulary floats) than in the head's
matmuls; compiled with the model, the casts, log-sum-exp and gradient fuse into a few kernels
(bench/cpu_levers.py). The loss itself is `cross_entropy.py`'s. The logits leave the module only
when a method asks for them (distillation adds a KL term on them), so the plain objective never
returns (nor keeps a gradient buffer for) them.
"""

from __future__ import annotations

import torch
from torch import nn

from tinylm.train.cross_entropy import cross_entropy


def lm_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over the positions that have a label (-100 marks none), in float32."""
    return cross_entropy(logits, labels)


class Objective(nn.Module):
    """`(loss, logits or None)` for a batch: next-token (decoder) or masked-token (encoder) loss.

    Holds the model as its only child, so its parameters are the model's (DDP and the optimizer see
    the same tensors) and a rebuilt model means a new `Objective` (`Run._refresh`).
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None, labels: torch.Tensor,
                return_logits: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        logits = self.model(input_ids, attention_mask)
        return lm_loss(logits, labels), (logits if return_logits else None)
