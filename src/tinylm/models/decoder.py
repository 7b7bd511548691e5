"""The one decoder: llama, gemma, gpt2 and neox are flavours of the same pre-norm stack.

The flavours differ in a handful of switches read from ``ModelConfig`` (norm type, learned vs
rotary positions, gated MLP, parallel residual, embedding scale, tying), not in code paths a
reader must follow separately. Each flavour matches its Hugging Face class exactly, so weights map
1:1 (see ``hf.py``), and a method written once (sleep, forget, grow) works on all four.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from tinylm.errors import UserError
from tinylm.models.base import TinyLM
from tinylm.models.config import ModelConfig
from tinylm.models.kv_cache import KVCache, LayerCache
from tinylm.models.layers import MLP, Attention, RotaryEmbedding, make_norm, padding_mask


class DecoderBlock(nn.Module):
    """Pre-norm block: ``x + attn(norm x)`` then ``+ mlp(norm x)``, or both at once (parallel)."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.parallel = config.parallel_residual
        self.attn_norm = make_norm(config)
        self.attn = Attention(config, causal=True)
        self.mlp_norm = make_norm(config)
        self.mlp = MLP(config)
        self.drop = nn.Dropout(config.dropout) if config.dropout > 0 else nn.Identity()

    def forward(self, x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor] | None,
                mask: torch.Tensor | None, cache: LayerCache | None = None) -> torch.Tensor:
        attn_out = self.drop(self.attn(self.attn_norm(x), rope, mask, cache))
        if self.parallel:  # GPT-NeoX: both branches read the same input
            return x + attn_out + self.drop(self.mlp(self.mlp_norm(x)))
        x = x + attn_out
        return x + self.drop(self.mlp(self.mlp_norm(x)))


class Decoder(TinyLM):
    """Causal language model; ``forward`` returns next-token logits (B, T, vocab)."""

    def __init__(self, config: ModelConfig):
        if config.kind != "decoder":
            raise UserError(f"Decoder needs a decoder config, got flavour {config.flavour!r}")
        super().__init__(config)
        cfg = self.config
        self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.d_model, padding_idx=cfg.pad_token_id)
        self.embed_positions = nn.Embedding(cfg.max_seq_len, cfg.d_model) if cfg.learned_positions else None
        # Gemma multiplies embeddings by sqrt(d) (so a tied, small-init table still gives unit-scale input).
        self.embed_scale = math.sqrt(cfg.d_model) if cfg.flavour == "gemma" else 1.0
        self.rotary = (RotaryEmbedding(cfg.rotary_dim, cfg.max_seq_len, cfg.rope_theta)
                       if cfg.rotary_dim else None)
        self.drop = nn.Dropout(cfg.dropout) if cfg.dropout > 0 else nn.Identity()
        self.layers = nn.ModuleList(self._make_block() for _ in range(cfg.n_layers))
        self.norm = make_norm(cfg)
        self.lm_head = None if cfg.tie_embeddings else nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        self._init_all_()

    def _make_block(self) -> nn.Module:
        return DecoderBlock(self.config)

    def new_cache(self) -> KVCache:
        """An empty key/value cache for decoding (see ``forward``'s ``cache``)."""
        return KVCache(len(self.layers), self.config.max_seq_len)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                cache: KVCache | None = None) -> torch.Tensor:
        """Logits for ``input_ids`` (B, T).

        ``attention_mask`` (B, T) of 1 (token) / 0 (padding) keeps real positions from attending to
        padding; positions are always 0..T-1 (right padding gives the unpadded results exactly).
        With a ``cache`` (from ``new_cache``; decoding only, no padding) ``input_ids`` are the
        positions after those the cache holds: they are read at positions ``cache.length ..`` and
        appended to it.
        """
        T = input_ids.shape[1]
        start = 0 if cache is None else cache.length
        if start + T > self.config.max_seq_len:
            raise UserError(
                f"sequence of {start + T} tokens is longer than the model's max_seq_len "
                f"({self.config.max_seq_len}); shorten the windows or raise max_seq_len"
            )
        if cache is not None and attention_mask is not None:
            raise ValueError("a decoding cache takes unpadded input: pass no attention_mask with it")
        x = self.embed_tokens(input_ids)
        if self.embed_scale != 1.0:
            x = x * self.embed_scale
        if self.embed_positions is not None:
            x = x + self.embed_positions.weight[start:start + T]
        x = self.drop(x)
        rope = (self.rotary.cos[start:start + T], self.rotary.sin[start:start + T]) if self.rotary is not None else None
        mask = padding_mask(attention_mask, causal=True) if attention_mask is not None else None
        if cache is None:
            for layer in self.layers:
                x = layer(x, rope, mask)
        else:
            for layer, layer_cache in zip(self.layers, cache.layers, strict=True):
                x = layer(x, rope, mask, layer_cache)
            cache.advance(T)
        x = self.norm(x)
        if self.lm_head is not None:
            return self.lm_head(x)
        return F.linear(x, self.embed_tokens.weight)
