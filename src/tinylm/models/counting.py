"""Parameter counts from the config alone, in closed form.

Closed form, not ``sum(p.numel())``, so a sweep can size a 345M model (and its FLOPs per token) without
building it, and so the counts say *which* parameters are which: ``compute.py`` needs the matmul
parameters (FLOPs/token = 6 x matmul params + attention), and papers quote totals with or without
embeddings. A test checks the closed form against the built modules for every preset.
"""

from __future__ import annotations

from torch import nn

from tinylm.models.config import ModelConfig


def _norm_params(cfg: ModelConfig) -> int:
    # LayerNorm (gpt2, neox, bert) has weight and bias; RMSNorm (llama, gemma) only a weight.
    return cfg.d_model * (1 if cfg.flavour in ("llama", "gemma") else 2)


def block_parameters(cfg: ModelConfig) -> dict[str, int]:
    """Parameters of one block: ``matmul`` (linear weights) and ``total``."""
    d, ff = cfg.d_model, cfg.d_ff
    q, kv = cfg.n_heads * cfg.head_dim, cfg.n_kv_heads * cfg.head_dim
    up = 2 * ff if cfg.gated_mlp else ff
    matmul = d * (q + 2 * kv) + q * d + d * up + ff * d
    biases = ((q + 2 * kv) + d if cfg.attn_bias else 0) + (up + d if cfg.mlp_bias else 0)
    return {"matmul": matmul, "total": matmul + biases + 2 * _norm_params(cfg)}


def count_parameters(model_or_config: nn.Module | ModelConfig) -> dict[str, int]:
    """Counts for a model (its ``config``) or a config.

    Keys: ``total`` (unique parameters; a tied head counted once), ``embedding`` (token, position
    and token-type tables), ``non_embedding`` (total - embedding), ``matmul_parameters`` (weights
    used in a matmul for every token: block linears, the LM/MLM head - tied or not - and BERT's MLM
    transform; not embedding lookups, norms, biases, nor the per-sequence classification head),
    ``per_layer`` (one block's total).
    """
    cfg = model_or_config.config if isinstance(model_or_config, nn.Module) else model_or_config
    d, V = cfg.d_model, cfg.vocab_size
    block = block_parameters(cfg)
    embedding = V * d
    if cfg.learned_positions:
        embedding += cfg.max_seq_len * d
    embedding += cfg.type_vocab_size * d
    untied_head = 0 if cfg.tie_embeddings else V * d
    matmul = cfg.n_layers * block["matmul"] + V * d
    total = embedding + cfg.n_layers * block["total"] + untied_head
    if cfg.kind == "decoder":
        total += _norm_params(cfg)  # final norm
    else:
        total += _norm_params(cfg)  # embedding norm
        total += d * d + d + _norm_params(cfg) + V  # MLM transform, its norm, decoder bias
        matmul += d * d
        if cfg.n_classes:
            total += d * d + d + d * cfg.n_classes + cfg.n_classes  # pooler + classifier
        if cfg.conv_stem:  # counted in total, not in matmul_parameters (a conv is not a per-token matmul)
            from tinylm.models.conv_stem import parse_conv_stem
            total += parse_conv_stem(cfg.conv_stem).parameters()
    return {
        "total": total,
        "embedding": embedding,
        "non_embedding": total - embedding,
        "matmul_parameters": matmul,
        "per_layer": block["total"],
    }
