"""The pieces every block is built from: norms, rotary positions, attention, MLP.

Each piece reproduces its Hugging Face reference numerically (same order of operations, same
float32 islands), because ``hf.py`` promises that our weights give the reference's logits. They
are written for speed as well: fused qkv and gate/up projections (one matmul each), RoPE tables
computed once into non-persistent buffers, attention through ``scaled_dot_product_attention``
(flash/efficient kernels on GPU), and no host synchronisation in any forward.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from tinylm.models.config import ModelConfig
from tinylm.models.kv_cache import LayerCache, cached_attention_mask

# On the CPU in bf16/fp16, attention runs as two matmuls (see `matmul_attention`); a switch for benchmarks.
CPU_MATMUL_ATTENTION = True
# In fp32 too: off, as measured (issue 23, bench/cpu_levers_fp32.py: no gain at AVX2, where fp32 is
# 84% aten::mm and SDPA's flash kernels are 6% of a compiled step).
CPU_MATMUL_ATTENTION_FP32 = False
# enable_gqa arrived in torch 2.5; without it, kv heads are repeated explicitly.
_SDPA_HAS_GQA = tuple(int(p) for p in torch.__version__.split(".")[:2] if p.isdigit()) >= (2, 5)


class RMSNorm(nn.Module):
    """Llama's RMSNorm: normalise in float32, scale by ``weight`` in the input dtype."""

    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xf = x.float()
        xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * xf.to(x.dtype)


class OffsetRMSNorm(nn.Module):
    """Gemma's RMSNorm: scale by ``(1 + weight)`` in float32, so a zero weight is the identity."""

    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xf = x.float()
        xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return (xf * (1.0 + self.weight.float())).type_as(x)


NORM_TYPES = (RMSNorm, OffsetRMSNorm, nn.LayerNorm)


def make_norm(config: ModelConfig) -> nn.Module:
    """The flavour's normalisation layer over ``d_model`` channels."""
    if config.flavour == "llama":
        return RMSNorm(config.d_model, config.norm_eps)
    if config.flavour == "gemma":
        return OffsetRMSNorm(config.d_model, config.norm_eps)
    return nn.LayerNorm(config.d_model, eps=config.norm_eps)


def make_activation(name: str) -> nn.Module:
    """Module form (not a lambda) so models pickle, deepcopy and compile cleanly."""
    return {
        "silu": nn.SiLU(),
        "gelu": nn.GELU(),
        "gelu_tanh": nn.GELU(approximate="tanh"),  # HF "gelu_new" / "gelu_pytorch_tanh"
        "relu": nn.ReLU(),
    }[name]


class RotaryEmbedding(nn.Module):
    """cos/sin tables for the first ``dim`` channels of each head, computed once.

    Kept as non-persistent buffers: they follow ``.to(device)`` but never enter a checkpoint, so a
    checkpoint does not depend on ``max_seq_len`` of the run that wrote it.
    """

    def __init__(self, dim: int, max_seq_len: int, theta: float):
        super().__init__()
        self.dim, self.max_seq_len, self.theta = dim, max_seq_len, theta
        cos, sin = self._tables(None)
        self.register_buffer("cos", cos, persistent=False)
        self.register_buffer("sin", sin, persistent=False)

    def _tables(self, device: torch.device | None) -> tuple[torch.Tensor, torch.Tensor]:
        inv_freq = 1.0 / (self.theta ** (torch.arange(0, self.dim, 2, dtype=torch.int64, device=device)
                                         .float() / self.dim))
        positions = torch.arange(self.max_seq_len, dtype=torch.int64, device=device).float()
        freqs = positions[:, None] * inv_freq[None, :]
        emb = torch.cat((freqs, freqs), dim=-1)
        return emb.cos(), emb.sin()

    def reset_tables_(self) -> None:
        """Recompute the tables in place (after ``to_empty`` from a meta-device build)."""
        cos, sin = self._tables(self.cos.device)
        self.cos.copy_(cos)
        self.sin.copy_(sin)


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate the first ``cos.shape[-1]`` channels of ``x`` (B, H, T, D); the rest pass through."""
    rot = cos.shape[-1]
    cos, sin = cos.to(x.dtype), sin.to(x.dtype)
    if rot == x.shape[-1]:
        return x * cos + _rotate_half(x) * sin
    x_rot, x_pass = x[..., :rot], x[..., rot:]
    return torch.cat((x_rot * cos + _rotate_half(x_rot) * sin, x_pass), dim=-1)


_CAUSAL_BIAS: dict[tuple[int, torch.device], torch.Tensor] = {}


@torch.compiler.assume_constant_result
def causal_bias(T: int, device: torch.device) -> torch.Tensor:
    """(T, T) float32, 0 where a query may attend and -inf above the diagonal; one per length and device.

    A constant to add, not a mask computed per call: compiled, the mask built in the graph (an index
    comparison per score, written out as a boolean tensor) made the softmax forward 2.6x slower
    (12.4 against 4.8 ms a step for BabyLlama 16M, 8 x 128, on 2 cores).
    """
    key = (T, torch.device(device))
    if key not in _CAUSAL_BIAS:
        _CAUSAL_BIAS[key] = torch.full((T, T), float("-inf"), device=device).triu_(1)
    return _CAUSAL_BIAS[key]


def matmul_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None,
                     causal: bool, dropout: float) -> torch.Tensor:
    """Softmax attention as two matmuls with a float32 softmax (what HF's "eager" path computes).

    Used on the CPU in bf16/fp16: there SDPA's flash kernel has a slow backward for short
    sequences (bench/attention_cpu.py: about twice the time of this at 8 x 8 heads x 128 x 32).
    """
    scores = (q @ k.transpose(-1, -2)).float() * q.shape[-1] ** -0.5
    if mask is None and causal:
        scores = scores + causal_bias(q.shape[-2], q.device)  # exp(-inf) = 0: as masked_fill
    elif mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    probs = scores.softmax(-1).to(v.dtype)
    if dropout:
        probs = F.dropout(probs, dropout)
    return probs @ v


class Attention(nn.Module):
    """Multi-head / grouped-query self-attention with a fused qkv projection.

    ``mask`` is None (then ``causal`` picks is_causal, which keeps the flash kernel) or a boolean
    (B, 1, T, T) or (B, 1, 1, T) tensor where True means "may attend". With a ``cache`` (decoding
    only) the new keys and values are appended to it and the queries read every cached position.
    """

    def __init__(self, config: ModelConfig, causal: bool):
        super().__init__()
        self.n_heads, self.n_kv_heads, self.head_dim = config.n_heads, config.n_kv_heads, config.head_dim
        self.causal = causal
        self.dropout = float(config.dropout)
        q_dim, kv_dim = self.n_heads * self.head_dim, self.n_kv_heads * self.head_dim
        self.split = (q_dim, kv_dim, kv_dim)
        self.qkv_proj = nn.Linear(config.d_model, q_dim + 2 * kv_dim, bias=config.attn_bias)
        self.o_proj = nn.Linear(q_dim, config.d_model, bias=config.attn_bias)

    def forward(self, x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor] | None,
                mask: torch.Tensor | None, cache: LayerCache | None = None) -> torch.Tensor:
        B, T, _ = x.shape
        q, k, v = self.qkv_proj(x).split(self.split, dim=-1)
        q = q.view(B, T, self.n_heads, self.head_dim).transpose(1, 2)
        k = k.view(B, T, self.n_kv_heads, self.head_dim).transpose(1, 2)
        v = v.view(B, T, self.n_kv_heads, self.head_dim).transpose(1, 2)
        if rope is not None:
            q, k = apply_rotary(q, *rope), apply_rotary(k, *rope)
        causal = self.causal
        if cache is not None:  # decoding: the queries read every position the cache holds
            k, v = cache.update(k, v)
            causal = T > 1 and k.shape[-2] == T  # a prefill into an empty cache is plain causal attention
            if not causal:
                mask = cached_attention_mask(T, k.shape[-2], x.device)
        dropout = self.dropout if self.training else 0.0
        if CPU_MATMUL_ATTENTION and x.device.type == "cpu" and (
                q.dtype in (torch.bfloat16, torch.float16) or CPU_MATMUL_ATTENTION_FP32):
            n_rep = self.n_heads // self.n_kv_heads
            if n_rep > 1:
                k, v = k.repeat_interleave(n_rep, dim=1), v.repeat_interleave(n_rep, dim=1)
            y = matmul_attention(q, k, v, mask, causal, dropout)
            return self.o_proj(y.transpose(1, 2).reshape(B, T, -1))
        extra = {}
        if self.n_kv_heads != self.n_heads:
            if mask is None and _SDPA_HAS_GQA:
                extra["enable_gqa"] = True
            else:  # head h reads kv head h // n_rep, as HF's repeat_kv
                n_rep = self.n_heads // self.n_kv_heads
                k, v = k.repeat_interleave(n_rep, dim=1), v.repeat_interleave(n_rep, dim=1)
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, dropout_p=dropout,
            is_causal=causal and mask is None, **extra,
        )
        return self.o_proj(y.transpose(1, 2).reshape(B, T, -1))


class MLP(nn.Module):
    """Gated (SwiGLU/GeGLU, fused gate+up) for llama/gemma; plain up-act-down otherwise."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.gated = config.gated_mlp
        self.act = make_activation(config.activation)
        up_out = 2 * config.d_ff if self.gated else config.d_ff
        if self.gated:
            self.gate_up_proj = nn.Linear(config.d_model, up_out, bias=config.mlp_bias)
        else:
            self.up_proj = nn.Linear(config.d_model, up_out, bias=config.mlp_bias)
        self.down_proj = nn.Linear(config.d_ff, config.d_model, bias=config.mlp_bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.gated:
            gate, up = self.gate_up_proj(x).chunk(2, dim=-1)
            return self.down_proj(self.act(gate) * up)
        return self.down_proj(self.act(self.up_proj(x)))


def padding_mask(attention_mask: torch.Tensor, causal: bool) -> torch.Tensor:
    """Boolean SDPA mask from a (B, T) 1/0 padding mask.

    For a causal model each query also always sees itself, so a pad query with no visible real key
    (left padding) gets a finite, ignorable output instead of NaN; real positions are unaffected.
    """
    keep = attention_mask.bool()[:, None, None, :]  # (B, 1, 1, T)
    if not causal:
        return keep
    T = attention_mask.shape[-1]
    causal_mask = torch.ones(T, T, dtype=torch.bool, device=attention_mask.device).tril_()
    eye = torch.eye(T, dtype=torch.bool, device=attention_mask.device)
    return causal_mask & (keep | eye)
