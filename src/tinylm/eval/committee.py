"""Soft committees of classifiers and the committee paper's latency measures.

Gross et al. (section 2.5): "the soft committee decision was performed by the summation of all output
fields without any alterations such as Softmax, activation or normalization". So the committee's
logits are the plain sum of its members' raw logits, whatever their architectures; members with
larger logits weigh more, as in the paper. (``ensemble.py`` is the other kind: the mean of language
-model logits, BabyLlama-2's teacher.)

Latency, two ways: the paper's layer count (4 per transformer block - attention, its norm, the MLP,
its norm - plus one per convolution layer plus the output layer: BERT-6 = 6 x 4 + 1 = 25, BERT-1
with two conv layers = 4 + 3 = 7), which for a committee run in parallel is its deepest member's;
and milliseconds per batch measured here, with the members run one after another on this device.
"""

from __future__ import annotations

import statistics
import time

import torch
from torch import nn

from tinylm.errors import UserError
from tinylm.models.conv_stem import stem_layers


def soft_committee(member_logits: list[torch.Tensor]) -> torch.Tensor:
    """The sum of the members' raw logits (no softmax, no normalisation), (B, n_classes)."""
    if not member_logits:
        raise UserError("a committee needs at least one member")
    shapes = {tuple(t.shape) for t in member_logits}
    if len(shapes) != 1:
        raise UserError(f"committee members disagree on the output shape ({sorted(shapes)}): fine-tune every "
                        "member on the same task and labels")
    return torch.stack([t.float() for t in member_logits]).sum(0)


def paper_layers(config) -> int:
    """The paper's latency in layers: 4 per block + conv layers + 1 output layer."""
    return 4 * int(config.n_layers) + stem_layers(config) + 1


def committee_layers(configs) -> int:
    """Members run in parallel: the committee is as deep as its deepest member."""
    return max(paper_layers(c) for c in configs)


@torch.no_grad()
def ms_per_batch(models: list[nn.Module], input_ids: torch.Tensor, attention_mask: torch.Tensor,
                 repeats: int = 5, warmup: int = 1) -> float:
    """Median wall-clock milliseconds to classify one batch with every model, run in sequence."""
    for m in models:
        m.eval()

    def once() -> float:
        start = time.perf_counter()
        for m in models:
            m.classify(input_ids, attention_mask)
        if input_ids.device.type == "cuda":
            torch.cuda.synchronize()
        return (time.perf_counter() - start) * 1000.0

    for _ in range(warmup):
        once()
    return statistics.median(once() for _ in range(max(1, repeats)))
