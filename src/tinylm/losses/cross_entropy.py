"""Cross-entropy over the vocabulary, from bf16/fp16 logits, without float32 logits to keep.

`F.cross_entropy(logits.float())` saves the float32 log-probabilities for its backward (batch x
sequence x vocabulary floats: 1.2 GB at vocabulary 50,257 and 6,144 tokens) and its backward
sums the one-hot gradient over the whole vocabulary for every position. This computes the same
loss from what the backward needs and nothing more: the logits in their own dtype (the matmul made
them anyway) and one float32 log-sum-exp per position. The gradient is written once:

    d loss / d logit_v = (softmax_v - [v = target]) * valid / n_valid

Eager, float32 work happens a chunk of positions at a time (`rows_per_chunk`: at most
`FLOAT32_CHUNK_BYTES`, and on a CPU a few MB that stay in cache); under `torch.compile` the casts
fuse into the kernels and no float32 copy exists at all. On the 2-core CPU benchmark (BabyLlama
16M, 8 x 128, bf16, compiled) it took a training step from 5,569 to 5,958 tokens/s over
`F.cross_entropy` (bench/cpu_levers.py).
"""

from __future__ import annotations

import torch

IGNORE_INDEX = -100
FLOAT32_CHUNK_BYTES = 256 << 20  # eager mode's float32 working set, at most
CPU_CHUNK_BYTES = 2 << 20        # on a CPU: rows that stay in cache from one pass over them to the next


def rows_per_chunk(logits: torch.Tensor) -> int:
    """How many (N, V) rows eager mode turns to float32 at a time. On a CPU the passes over a chunk
    (cast, log-sum-exp, gather; in the backward exp, scale, scatter, cast back) run from cache when
    the chunk is small: the eager CE forward and backward at 1,024 x 16,000 took 45 ms in 256 MB
    chunks and 24 ms in 2 MB ones on the 2-core CPU. On a GPU the bound is memory only: small chunks
    would be kernel launches. Compiled, one chunk: inductor fuses the casts and no float32 copy exists."""
    rows, vocab = logits.shape
    if torch.compiler.is_compiling():
        return max(1, rows)
    budget = min(FLOAT32_CHUNK_BYTES, CPU_CHUNK_BYTES) if logits.device.type == "cpu" else FLOAT32_CHUNK_BYTES
    return max(1, min(rows, budget // (4 * vocab)))


def softmax_minus_targets(logits: torch.Tensor, lse: torch.Tensor, targets: torch.Tensor, scale: torch.Tensor,
                          compiled: bool, soft: dict | None = None) -> torch.Tensor:
    """The cross-entropy's gradient `(softmax(z) − onehot(targets)) · scale` per row, in the logits'
    dtype. With `soft` (soft_targets.py: the KL term's `kl_scale`, `scores`, `p_scale`, `temperature`
    and `lse_t`), also `+ softmax(z / T) · kl_scale − scores · p_scale`.

    Two forms of one formula. Compiled, it is one expression, the one-hot a comparison with int32
    ids: inductor fuses it into one pass and no float32 copy of the logits exists. Eager, every
    operation is a pass over memory, so a float32 copy of a chunk of rows (`rows_per_chunk`) becomes
    the gradient in place and the one-hot is a scatter of N numbers: the CE + KL forward and backward
    at 1,024 x 16,000 went from 116 to 91 ms eager on the 2-core CPU (one 256 MB chunk); written in
    place, the compiled form was 10% slower (21.8 vs 19.8 ms), hence the two.
    """
    wide = lse.dtype
    t = 1.0 if soft is None else soft["temperature"]
    if compiled:
        x = logits.to(wide)
        softmax = torch.exp(x - lse[:, None])
        vocab = torch.arange(logits.shape[-1], device=logits.device, dtype=torch.int32)
        grad = (softmax - (vocab == targets.int()[:, None]).to(wide)) * scale[:, None]
        if soft is not None:
            softmax_t = softmax if t == 1.0 else torch.exp(x / t - soft["lse_t"][:, None])
            grad = grad + softmax_t * soft["kl_scale"][:, None] - soft["scores"].to(wide) * soft["p_scale"][:, None]
        return grad.to(logits.dtype)
    out = torch.empty_like(logits)
    step = rows_per_chunk(logits)
    for start in range(0, logits.shape[0], step):
        rows = slice(start, start + step)
        x, ce_scale = logits[rows].to(wide, copy=True), scale[rows, None]
        if soft is None:
            grad = x.sub_(lse[rows, None]).exp_().mul_(ce_scale)
        else:
            kl_scale = soft["kl_scale"][rows, None]
            if t == 1.0:
                grad = x.sub_(lse[rows, None]).exp_().mul_(ce_scale + kl_scale)
            else:
                softmax_t = (x / t).sub_(soft["lse_t"][rows, None]).exp_().mul_(kl_scale)
                grad = x.sub_(lse[rows, None]).exp_().mul_(ce_scale).add_(softmax_t)
            grad.addcmul_(soft["scores"][rows], soft["p_scale"][rows, None], value=-1.0)  # mixed dtypes: no copy
        grad.scatter_add_(1, targets[rows, None], -ce_scale)
        out[rows] = grad
    return out


class CrossEntropy(torch.autograd.Function):
    """Mean cross-entropy of (N, V) logits against (N,) labels; `IGNORE_INDEX` labels count for nothing."""

    @staticmethod
    def forward(ctx, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        valid = labels != IGNORE_INDEX
        targets = labels.clamp(min=0)
        wide = torch.promote_types(logits.dtype, torch.float32)  # bf16 -> fp32, fp64 stays
        step = rows_per_chunk(logits)
        lse, picked = [], []
        for start in range(0, logits.shape[0], step):
            x = logits[start:start + step].to(wide)
            lse.append(torch.logsumexp(x, dim=-1))
            picked.append(x.gather(-1, targets[start:start + step, None]).squeeze(-1))
        lse_all = torch.cat(lse) if len(lse) > 1 else lse[0]
        target_logit = torch.cat(picked) if len(picked) > 1 else picked[0]
        n_valid = valid.sum()
        ctx.save_for_backward(logits, lse_all, targets, valid, n_valid)
        ctx.compiled = torch.compiler.is_compiling()  # the backward picks its form by this (see softmax_minus_targets)
        return ((lse_all - target_logit) * valid).sum() / n_valid  # 0 / 0 = nan, as F.cross_entropy

    @staticmethod
    def backward(ctx, grad_loss: torch.Tensor):
        logits, lse, targets, valid, n_valid = ctx.saved_tensors
        scale = (grad_loss / n_valid) * valid  # (N,): each valid position's share of the mean
        return softmax_minus_targets(logits, lse, targets, scale, ctx.compiled), None


def cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over labelled positions; `logits` (..., V), `labels` (...) with -100 = none."""
    return CrossEntropy.apply(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1))
