"""A key/value cache for decoding: each position's keys and values are computed once.

Without it every new token recomputes the whole context (T^2 attention work and T times the
projections per token); with it the prompt is read once (prefill), then each step reads one token
and attends over the keys and values already held. Positions continue from ``length``: the decoder
slices its RoPE tables or learned position embeddings at ``length .. length + T``, so cached logits
equal a full recomputation (tests/models/test_models_kv_cache.py checks each flavour in fp32).

The cache holds at most the model's ``max_seq_len`` positions (the RoPE table and the learned
position table end there); a caller that wants to go further must start over on the latest window
(``tinylm.eval.generation`` does). Training never builds one: the attention takes the cache path
only when a cache object is passed, so the training forward is the same code as before.
"""

from __future__ import annotations

import torch


class LayerCache:
    """One layer's keys and values, (B, kv heads, positions, head dim), in a buffer allocated once."""

    def __init__(self, capacity: int):
        self.capacity = capacity
        self.keys: torch.Tensor | None = None
        self.values: torch.Tensor | None = None
        self.length = 0

    def update(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Append the new positions' ``k``, ``v``; return every position's keys and values so far."""
        B, H, T, D = k.shape
        if self.keys is None:
            self.keys = k.new_empty(B, H, self.capacity, D)
            self.values = v.new_empty(B, H, self.capacity, D)
        end = self.length + T
        self.keys[:, :, self.length:end] = k
        self.values[:, :, self.length:end] = v
        self.length = end
        return self.keys[:, :, :end], self.values[:, :, :end]


class KVCache:
    """Every layer's cache and the number of positions already read (the next token's position)."""

    def __init__(self, n_layers: int, max_seq_len: int):
        self.max_seq_len = max_seq_len
        self.layers = [LayerCache(max_seq_len) for _ in range(n_layers)]
        self.length = 0

    def advance(self, n: int) -> None:
        self.length += n


def cached_attention_mask(new: int, total: int, device: torch.device) -> torch.Tensor | None:
    """Which keys each of ``new`` queries may read, when they are the last of ``total`` positions.

    None when a plain call is right: one query reads every key. Otherwise a boolean (new, total)
    mask, causal with the diagonal shifted by the ``total - new`` positions already cached (SDPA's
    own ``is_causal`` aligns the diagonal at the top left, which is right only for an empty cache).
    """
    if new == 1:
        return None
    return torch.ones(new, total, dtype=torch.bool, device=device).tril_(total - new)
