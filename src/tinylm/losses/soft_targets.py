"""Soft targets: a distribution per position that the objective fits beside the labels (the KL term).

Distillation trains the student on

    L = (1 − w)·CE(y, z) + w·T²·KL(p ‖ softmax(z / T))

with p the teachers' distribution at temperature T and w = 1 − α. Computed apart, the KL term
costs more passes over batch x vocabulary floats than the cross-entropy it sits beside: both
log-softmaxes again, and a backward of its own. Here it is fused with the cross-entropy: one
forward pass over the student's logits gives the log-sum-exp both terms need (for T = 1, the
BabyLlama-2 setting) and the dot product Σ_v p_v z_v, and the backward writes the gradient of
both terms in the same pass that writes the cross-entropy's:

    d CE / d z  = (softmax(z) − onehot(y)) / n
    d KL / d z  = (softmax(z / T) − p) / (T·n)

The teacher side is computed once, without gradients, by the method that supplies the targets
(`methods/distill.py: teacher_distribution`): the softmax of the mean logits at T, left
unnormalised (`scores` = exp(z_t / T − max) in the student's compute dtype, and their sum `norm`
per position, so p = scores / norm), and p's entropy H, which makes the KL's value
KL = lse(z / T) − Σ p z / T − H but not its gradient. The norm is the sum of the scores as
rounded, so p sums to 1 whatever their dtype. Unnormalised, the softmax takes one pass of
exponentials instead of two (log-sum-exp, then p): on the 2-core CPU at 1,024 x 16,000 that is
9.3 against 25.3 ms compiled, where the student's whole step is about 170 ms.
Eager, the float32 work goes a chunk of positions at a time, as in `cross_entropy.py`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from tinylm.losses.cross_entropy import IGNORE_INDEX, rows_per_chunk, softmax_minus_targets


@dataclass
class SoftTargets:
    """What a method hands the objective for one micro-batch (see `Method.soft_targets`)."""

    scores: torch.Tensor   # (B, T, V) the target distribution at `temperature` times `norm`, in the compute dtype
    norm: torch.Tensor     # (B, T) float32: the scores' sum, so p = scores / norm
    entropy: torch.Tensor  # (B, T) float32: H(p), for the KL's value only
    weight: float          # w: the KL term's weight; the cross-entropy's is 1 − w
    temperature: float = 1.0


class CrossEntropyKL(torch.autograd.Function):
    """`(CE, KL)` of (N, V) logits: CE against (N,) labels, KL(p ‖ softmax(z/T)) per position, both
    averaged over the labelled positions (CE is NaN with none, as `F.cross_entropy`; KL is 0)."""

    @staticmethod
    def forward(ctx, logits, labels, scores, norm, entropy, temperature: float):
        valid = labels != IGNORE_INDEX
        targets = labels.clamp(min=0)
        wide = torch.promote_types(logits.dtype, torch.float32)  # bf16 -> fp32, fp64 stays
        step = rows_per_chunk(logits)
        lse, lse_t, picked, dot = [], [], [], []
        for start in range(0, logits.shape[0], step):
            rows = slice(start, start + step)
            x = logits[rows].to(wide)
            lse.append(torch.logsumexp(x, dim=-1))
            lse_t.append(lse[-1] if temperature == 1.0 else torch.logsumexp(x / temperature, dim=-1))
            picked.append(x.gather(-1, targets[rows, None]).squeeze(-1))
            dot.append(row_dot(scores[rows], x) / norm[rows])  # Σ p z
        lse, lse_t, picked, dot = (torch.cat(v) if len(v) > 1 else v[0] for v in (lse, lse_t, picked, dot))
        n_valid = valid.sum()
        ctx.save_for_backward(logits, lse, lse_t, targets, valid, n_valid, scores, norm)
        ctx.temperature, ctx.compiled = temperature, torch.compiler.is_compiling()
        ce = ((lse - picked) * valid).sum() / n_valid
        kl = ((lse_t - dot / temperature - entropy) * valid).sum() / n_valid.clamp(min=1)
        return ce, kl

    @staticmethod
    def backward(ctx, grad_ce, grad_kl):
        logits, lse, lse_t, targets, valid, n_valid, scores, norm = ctx.saved_tensors
        ce_scale = (grad_ce / n_valid) * valid                                    # (N,)
        kl_scale = (grad_kl / (n_valid.clamp(min=1) * ctx.temperature)) * valid  # (N,)
        soft = {"kl_scale": kl_scale, "scores": scores, "p_scale": kl_scale / norm,  # p = scores / norm
                "temperature": ctx.temperature, "lse_t": lse_t}
        return softmax_minus_targets(logits, lse, targets, ce_scale, ctx.compiled, soft), None, None, None, None, None


def row_dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Σ_v a_v·b_v over the last dimension, in b's dtype (a bf16 `a` is promoted element by element,
    never copied). A product and a sum, not an einsum: as a batch of vector dot products an einsum
    becomes a bmm, 6-11x slower on the CPU, and under bf16 autocast a bf16 one."""
    return (a * b).sum(-1)


def cross_entropy_kl(logits: torch.Tensor, labels: torch.Tensor,
                     targets: SoftTargets) -> tuple[torch.Tensor, torch.Tensor]:
    """`(CE, KL)` for (..., V) logits, (...) labels (-100 = none) and soft targets of the same shape."""
    vocab = logits.shape[-1]
    return CrossEntropyKL.apply(logits.reshape(-1, vocab), labels.reshape(-1), targets.scores.reshape(-1, vocab),
                                targets.norm.reshape(-1), targets.entropy.reshape(-1), float(targets.temperature))


@torch.no_grad()
def target_distribution(logits: torch.Tensor, temperature: float = 1.0,
                        dtype: torch.dtype | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """`(scores, norm, entropy)` of softmax(logits / T) (see `SoftTargets`): the scores in `dtype`
    (default the logits'), the rest in float32 (float64 for float64 logits), per position. Norm and
    entropy are those of the scores as rounded to `dtype`, so p = scores / norm, the distribution
    the objective reads, sums to 1 and has exactly that entropy."""
    wide = torch.promote_types(logits.dtype, torch.float32)
    dtype = dtype or logits.dtype

    def softmax_of(rows: torch.Tensor):
        shifted = rows.to(wide) / temperature
        shifted = shifted - shifted.amax(-1, keepdim=True)
        scores = shifted.exp().to(dtype)
        e = scores.to(wide)  # everything below from the rounded scores: compiled, exp runs once per logit
        norm = e.sum(-1)
        return scores, norm, norm.log() - row_dot(e, shifted) / norm

    if torch.compiler.is_compiling():  # one fused pass over whole rows
        return softmax_of(logits)
    flat = logits.reshape(-1, logits.shape[-1])
    scores = torch.empty(flat.shape, dtype=dtype, device=logits.device)
    norm = torch.empty(flat.shape[0], dtype=wide, device=logits.device)
    entropy = torch.empty_like(norm)
    step = rows_per_chunk(flat)  # on a CPU, a chunk stays in cache through these passes: 47 -> 20 ms at 1,024 x 16,000
    for start in range(0, flat.shape[0], step):
        rows = slice(start, start + step)
        scores[rows], norm[rows], entropy[rows] = softmax_of(flat[rows])
    shape = logits.shape[:-1]
    return scores.view(logits.shape), norm.view(shape), entropy.view(shape)
