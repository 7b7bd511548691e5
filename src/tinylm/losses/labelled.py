"""The logits a loss needs: at the positions that have a label.

A masked LM (a model with `predicts_at`, `Encoder.forward(at=)`) runs its head at the labelled
positions only: its decoder over the vocabulary is most of a tiny encoder's step, and only the masked
15% carry a label. Any other model gives every position's logits. Training (`train/objective.py`) and
validation (`eval/validation.py`) both call this, so the two compute one loss the same way.
"""

from __future__ import annotations

import torch

from tinylm.losses.cross_entropy import IGNORE_INDEX


def labelled_logits(model, input_ids: torch.Tensor, attention_mask: torch.Tensor | None,
                    labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """`(logits, labels)`: (n, vocab) and (n,) at the n labelled positions for a masked LM, else the
    model's logits at every position and the labels as given."""
    if getattr(model, "predicts_at", False):
        at = labels != IGNORE_INDEX
        return model(input_ids, attention_mask, at=at), labels[at]
    return model(input_ids, attention_mask), labels
