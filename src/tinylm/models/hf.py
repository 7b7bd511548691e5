"""Hugging Face ``transformers`` export and import: the proof that each flavour is its reference.

``to_hf(model)`` gives a ``LlamaForCausalLM`` / ``GemmaForCausalLM`` / ``GPT2LMHeadModel`` /
``GPTNeoXForCausalLM`` / ``BertForMaskedLM`` (or ``BertForSequenceClassification``) with the same
logits; that is what lets lm-eval-harness and the BabyLM pipeline score our checkpoints.
``from_hf(hf_model)`` is the inverse. transformers is optional at run time, so it is imported
inside the functions. A configuration the reference class cannot express (e.g. minGemma's MLP
biases on a Gemma) is a UserError naming the field to change.
"""

from __future__ import annotations

from typing import Any

import torch

from tinylm.errors import UserError
from tinylm.models.config import ModelConfig
from tinylm.optional import require

_HF_ACT = {"silu": "silu", "gelu": "gelu", "gelu_tanh": "gelu_pytorch_tanh", "relu": "relu"}
_FROM_HF_ACT = {"silu": "silu", "swish": "silu", "gelu": "gelu", "gelu_new": "gelu_tanh",
                "gelu_pytorch_tanh": "gelu_tanh", "gelu_python_tanh": "gelu_tanh", "relu": "relu"}


def _transformers():
    return require("transformers", "converting a model to or from transformers")


def _require(ok: bool, cfg: ModelConfig, what: str, fix: str) -> None:
    if not ok:
        raise UserError(f"cannot export a {cfg.flavour} model with {what} to transformers; {fix}")


def _common_checks(cfg: ModelConfig) -> None:
    _require(not getattr(cfg, "conv_stem", None), cfg, f"a convolutional stem ({cfg.conv_stem})",
             "BertModel has no such layer; export a model without conv_stem (or use tinylm's own checkpoints)")
    if cfg.flavour != "neox":
        _require(not cfg.parallel_residual, cfg, "a parallel residual",
                 "only GPTNeoX has one; set parallel_residual false")
    if cfg.flavour in ("llama", "gemma"):
        _require(cfg.rotary_pct == 1.0, cfg, f"rotary_pct {cfg.rotary_pct}",
                 "its reference rotates the whole head; set rotary_pct 1.0 (or use flavour neox)")
    if cfg.flavour in ("gpt2", "neox", "bert"):
        _require(cfg.n_kv_heads == cfg.n_heads, cfg, f"{cfg.n_kv_heads} kv heads",
                 "its reference class has no grouped-query attention; set n_kv_heads = n_heads")
        _require(cfg.head_dim * cfg.n_heads == cfg.d_model, cfg, f"head_dim {cfg.head_dim}",
                 "its reference class needs head_dim = d_model / n_heads")
        _require(cfg.mlp_bias and (cfg.attn_bias or cfg.flavour == "neox"), cfg,
                 "linear layers without biases", "set attn_bias and mlp_bias to true")


# ---------------------------------------------------------------- configs
def hf_config(cfg: ModelConfig):
    """The transformers config of the reference class for ``cfg``."""
    tf = _transformers()
    _common_checks(cfg)
    act = _HF_ACT[cfg.activation]
    if cfg.flavour in ("llama", "gemma"):
        common = dict(vocab_size=cfg.vocab_size, hidden_size=cfg.d_model, intermediate_size=cfg.d_ff,
                      num_hidden_layers=cfg.n_layers, num_attention_heads=cfg.n_heads,
                      num_key_value_heads=cfg.n_kv_heads, head_dim=cfg.head_dim, hidden_act=act,
                      max_position_embeddings=cfg.max_seq_len, initializer_range=cfg.init_std,
                      rms_norm_eps=cfg.norm_eps, tie_word_embeddings=cfg.tie_embeddings,
                      rope_theta=float(cfg.rope_theta), attention_bias=cfg.attn_bias,
                      attention_dropout=cfg.dropout, pad_token_id=cfg.pad_token_id,
                      bos_token_id=None, eos_token_id=None)
        if cfg.flavour == "llama":
            return tf.LlamaConfig(mlp_bias=cfg.mlp_bias, **common)
        _require(not cfg.mlp_bias, cfg, "MLP biases (minGemma)",
                 "GemmaForCausalLM has none; set mlp_bias false (and retrain) to export")
        _require(cfg.activation == "gelu_tanh", cfg, f"activation {cfg.activation!r}",
                 "GemmaConfig always uses tanh-approximated GELU; set activation 'gelu_tanh'")
        return tf.GemmaConfig(**common)
    if cfg.flavour == "gpt2":
        _require(cfg.tie_embeddings, cfg, "an untied head", "GPT2LMHeadModel ties it; set tie_embeddings true")
        return tf.GPT2Config(vocab_size=cfg.vocab_size, n_positions=cfg.max_seq_len, n_embd=cfg.d_model,
                             n_layer=cfg.n_layers, n_head=cfg.n_heads, n_inner=cfg.d_ff,
                             activation_function="gelu_new" if cfg.activation == "gelu_tanh" else act,
                             resid_pdrop=cfg.dropout, embd_pdrop=cfg.dropout, attn_pdrop=cfg.dropout,
                             layer_norm_epsilon=cfg.norm_eps, initializer_range=cfg.init_std,
                             pad_token_id=cfg.pad_token_id, bos_token_id=None, eos_token_id=None)
    if cfg.flavour == "neox":
        return tf.GPTNeoXConfig(vocab_size=cfg.vocab_size, hidden_size=cfg.d_model,
                                num_hidden_layers=cfg.n_layers, num_attention_heads=cfg.n_heads,
                                intermediate_size=cfg.d_ff, hidden_act=act,
                                max_position_embeddings=cfg.max_seq_len,
                                rope_parameters={"rope_type": "default", "rope_theta": float(cfg.rope_theta),
                                                 "partial_rotary_factor": float(cfg.rotary_pct)},
                                use_parallel_residual=cfg.parallel_residual, layer_norm_eps=cfg.norm_eps,
                                tie_word_embeddings=cfg.tie_embeddings, attention_bias=cfg.attn_bias,
                                attention_dropout=cfg.dropout, hidden_dropout=cfg.dropout,
                                initializer_range=cfg.init_std, pad_token_id=cfg.pad_token_id,
                                bos_token_id=None, eos_token_id=None)
    _require(cfg.type_vocab_size > 0, cfg, "no token types", "BertModel always has them; set type_vocab_size >= 1")
    _require(cfg.tie_embeddings, cfg, "an untied MLM decoder", "set tie_embeddings true")
    return tf.BertConfig(vocab_size=cfg.vocab_size, hidden_size=cfg.d_model, num_hidden_layers=cfg.n_layers,
                         num_attention_heads=cfg.n_heads, intermediate_size=cfg.d_ff, hidden_act=act,
                         hidden_dropout_prob=cfg.dropout, attention_probs_dropout_prob=cfg.dropout,
                         max_position_embeddings=cfg.max_seq_len, type_vocab_size=cfg.type_vocab_size,
                         layer_norm_eps=cfg.norm_eps, initializer_range=cfg.init_std,
                         pad_token_id=cfg.pad_token_id if cfg.pad_token_id is not None else 0,
                         num_labels=max(cfg.n_classes, 1))


def config_from_hf(hf_cfg) -> ModelConfig:
    """Our ``ModelConfig`` for a transformers config of a supported architecture."""
    kind = getattr(hf_cfg, "model_type", None)
    act_name = getattr(hf_cfg, "hidden_act", None) or getattr(hf_cfg, "activation_function", None)
    if act_name not in _FROM_HF_ACT:
        raise UserError(f"cannot import activation {act_name!r}; supported: {', '.join(_FROM_HF_ACT)}")
    act = _FROM_HF_ACT[act_name]
    rope = getattr(hf_cfg, "rope_parameters", None) or {}
    if rope and rope.get("rope_type", "default") != "default":
        raise UserError(f"cannot import rope_type {rope.get('rope_type')!r}; only the default RoPE is supported")
    if kind in ("llama", "gemma"):
        return ModelConfig(
            flavour=kind, n_layers=hf_cfg.num_hidden_layers, n_heads=hf_cfg.num_attention_heads,
            n_kv_heads=hf_cfg.num_key_value_heads, d_model=hf_cfg.hidden_size, d_ff=hf_cfg.intermediate_size,
            head_dim=hf_cfg.head_dim, vocab_size=hf_cfg.vocab_size, max_seq_len=hf_cfg.max_position_embeddings,
            rope_theta=float(rope.get("rope_theta", 10000.0)), tie_embeddings=bool(hf_cfg.tie_word_embeddings),
            norm_eps=hf_cfg.rms_norm_eps, attn_bias=bool(hf_cfg.attention_bias),
            mlp_bias=bool(getattr(hf_cfg, "mlp_bias", False)), activation=act,
            dropout=float(hf_cfg.attention_dropout), pad_token_id=hf_cfg.pad_token_id,
            init_std=hf_cfg.initializer_range)
    if kind == "gpt2":
        if hf_cfg.scale_attn_by_inverse_layer_idx or not hf_cfg.scale_attn_weights:
            raise UserError("cannot import a GPT-2 with non-standard attention scaling")
        return ModelConfig(
            flavour="gpt2", n_layers=hf_cfg.n_layer, n_heads=hf_cfg.n_head, d_model=hf_cfg.n_embd,
            d_ff=hf_cfg.n_inner or 4 * hf_cfg.n_embd, vocab_size=hf_cfg.vocab_size,
            max_seq_len=hf_cfg.n_positions, norm_eps=hf_cfg.layer_norm_epsilon, activation=act,
            dropout=float(hf_cfg.resid_pdrop), init_std=hf_cfg.initializer_range)
    if kind == "gpt_neox":
        return ModelConfig(
            flavour="neox", n_layers=hf_cfg.num_hidden_layers, n_heads=hf_cfg.num_attention_heads,
            d_model=hf_cfg.hidden_size, d_ff=hf_cfg.intermediate_size, vocab_size=hf_cfg.vocab_size,
            max_seq_len=hf_cfg.max_position_embeddings, rope_theta=float(rope.get("rope_theta", 10000.0)),
            rotary_pct=float(rope.get("partial_rotary_factor", 1.0)),
            tie_embeddings=bool(hf_cfg.tie_word_embeddings), norm_eps=hf_cfg.layer_norm_eps,
            attn_bias=bool(hf_cfg.attention_bias), mlp_bias=True, activation=act,
            parallel_residual=bool(hf_cfg.use_parallel_residual), dropout=float(hf_cfg.hidden_dropout),
            init_std=hf_cfg.initializer_range)
    if kind == "bert":
        if getattr(hf_cfg, "position_embedding_type", "absolute") != "absolute":
            raise UserError("cannot import a BERT with relative position embeddings")
        return ModelConfig(
            flavour="bert", n_layers=hf_cfg.num_hidden_layers, n_heads=hf_cfg.num_attention_heads,
            d_model=hf_cfg.hidden_size, d_ff=hf_cfg.intermediate_size, vocab_size=hf_cfg.vocab_size,
            max_seq_len=hf_cfg.max_position_embeddings, type_vocab_size=hf_cfg.type_vocab_size,
            norm_eps=hf_cfg.layer_norm_eps, activation=act, dropout=float(hf_cfg.hidden_dropout_prob),
            pad_token_id=hf_cfg.pad_token_id, init_std=hf_cfg.initializer_range)
    raise UserError(f"cannot import model_type {kind!r}; supported: llama, gemma, gpt2, gpt_neox, bert")


# ---------------------------------------------------------------- weights
def _layer_map(cfg: ModelConfig, sd: dict[str, torch.Tensor], i: int) -> dict[str, torch.Tensor]:
    """HF tensors of block ``i`` from our state dict ``sd``."""
    p = f"layers.{i}."
    q_dim, kv_dim = cfg.n_heads * cfg.head_dim, cfg.n_kv_heads * cfg.head_dim
    qkv_w = sd[p + "attn.qkv_proj.weight"]
    qkv_b = sd.get(p + "attn.qkv_proj.bias")
    out: dict[str, torch.Tensor] = {}

    def put(name: str, ours: str) -> None:
        for suffix in ("weight", "bias"):
            if p + ours + "." + suffix in sd:
                out[name + "." + suffix] = sd[p + ours + "." + suffix]

    if cfg.flavour in ("llama", "gemma"):
        pre = f"model.layers.{i}."
        for name, w in zip(("q_proj", "k_proj", "v_proj"), qkv_w.split((q_dim, kv_dim, kv_dim))):
            out[f"{pre}self_attn.{name}.weight"] = w
        if qkv_b is not None:
            for name, b in zip(("q_proj", "k_proj", "v_proj"), qkv_b.split((q_dim, kv_dim, kv_dim))):
                out[f"{pre}self_attn.{name}.bias"] = b
        put(pre + "self_attn.o_proj", "attn.o_proj")
        gate_w, up_w = sd[p + "mlp.gate_up_proj.weight"].chunk(2)
        out[pre + "mlp.gate_proj.weight"], out[pre + "mlp.up_proj.weight"] = gate_w, up_w
        if p + "mlp.gate_up_proj.bias" in sd:
            gate_b, up_b = sd[p + "mlp.gate_up_proj.bias"].chunk(2)
            out[pre + "mlp.gate_proj.bias"], out[pre + "mlp.up_proj.bias"] = gate_b, up_b
        put(pre + "mlp.down_proj", "mlp.down_proj")
        put(pre + "input_layernorm", "attn_norm")
        put(pre + "post_attention_layernorm", "mlp_norm")
    elif cfg.flavour == "gpt2":  # Conv1D stores (in, out): transpose every matrix
        pre = f"transformer.h.{i}."
        for hf_name, ours in (("attn.c_attn", "attn.qkv_proj"), ("attn.c_proj", "attn.o_proj"),
                              ("mlp.c_fc", "mlp.up_proj"), ("mlp.c_proj", "mlp.down_proj")):
            out[pre + hf_name + ".weight"] = sd[p + ours + ".weight"].t()
            out[pre + hf_name + ".bias"] = sd[p + ours + ".bias"]
        put(pre + "ln_1", "attn_norm")
        put(pre + "ln_2", "mlp_norm")
    elif cfg.flavour == "neox":  # fused qkv laid out per head: [q_h, k_h, v_h] for each head h
        pre = f"gpt_neox.layers.{i}."
        H, D = cfg.n_heads, cfg.head_dim
        out[pre + "attention.query_key_value.weight"] = torch.stack(
            [t.reshape(H, D, -1) for t in qkv_w.split(q_dim)], dim=1).reshape(3 * q_dim, -1)
        if qkv_b is not None:
            out[pre + "attention.query_key_value.bias"] = torch.stack(
                [t.reshape(H, D) for t in qkv_b.split(q_dim)], dim=1).reshape(3 * q_dim)
        put(pre + "attention.dense", "attn.o_proj")
        put(pre + "mlp.dense_h_to_4h", "mlp.up_proj")
        put(pre + "mlp.dense_4h_to_h", "mlp.down_proj")
        put(pre + "input_layernorm", "attn_norm")
        put(pre + "post_attention_layernorm", "mlp_norm")
    else:  # bert
        pre = f"bert.encoder.layer.{i}."
        for name, w, b in zip(("query", "key", "value"), qkv_w.split(q_dim), qkv_b.split(q_dim)):
            out[f"{pre}attention.self.{name}.weight"], out[f"{pre}attention.self.{name}.bias"] = w, b
        put(pre + "attention.output.dense", "attn.o_proj")
        put(pre + "attention.output.LayerNorm", "attn_norm")
        put(pre + "intermediate.dense", "mlp.up_proj")
        put(pre + "output.dense", "mlp.down_proj")
        put(pre + "output.LayerNorm", "mlp_norm")
    return out


def _to_hf_state(cfg: ModelConfig, sd: dict[str, torch.Tensor], head: str) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    for i in range(cfg.n_layers):
        out.update(_layer_map(cfg, sd, i))

    def put(name: str, ours: str) -> None:
        for suffix in ("weight", "bias"):
            if ours + "." + suffix in sd:
                out[name + "." + suffix] = sd[ours + "." + suffix]

    emb = sd["embed_tokens.weight"]
    if cfg.flavour in ("llama", "gemma"):
        out["model.embed_tokens.weight"] = emb
        put("model.norm", "norm")
        out["lm_head.weight"] = sd.get("lm_head.weight", emb)
    elif cfg.flavour == "gpt2":
        out["transformer.wte.weight"], out["transformer.wpe.weight"] = emb, sd["embed_positions.weight"]
        put("transformer.ln_f", "norm")
        out["lm_head.weight"] = emb
    elif cfg.flavour == "neox":
        out["gpt_neox.embed_in.weight"] = emb
        put("gpt_neox.final_layer_norm", "norm")
        out["lm_head.weight"] = sd.get("lm_head.weight", emb)
    else:
        e = "bert.embeddings."
        out[e + "word_embeddings.weight"] = emb
        out[e + "position_embeddings.weight"] = sd["embed_positions.weight"]
        out[e + "token_type_embeddings.weight"] = sd["embed_token_types.weight"]
        put(e + "LayerNorm", "embed_norm")
        if head == "mlm":
            put("cls.predictions.transform.dense", "mlm_transform")
            put("cls.predictions.transform.LayerNorm", "mlm_norm")
            out["cls.predictions.decoder.weight"] = emb
            out["cls.predictions.decoder.bias"] = out["cls.predictions.bias"] = sd["mlm_bias"]
        else:
            put("bert.pooler.dense", "pooler")
            put("classifier", "classifier")
    return {k: v.detach().clone() for k, v in out.items()}


def _from_hf_state(cfg: ModelConfig, hf_sd: dict[str, torch.Tensor],
                   shapes: dict[str, torch.Size]) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Invert ``_to_hf_state`` by probing; returns our tensors and the keys HF did not cover.

    Each of our scalars gets a unique id; pushing the ids through the (index-only) export mapping
    tells where every HF entry came from, so the inverse never has to be written by hand.
    """
    ids, offset = {}, 0
    for key, shape in shapes.items():
        n = int(torch.Size(shape).numel())
        ids[key] = torch.arange(offset, offset + n, dtype=torch.float64).reshape(shape)
        offset += n
    flat = torch.zeros(offset, dtype=next(iter(hf_sd.values())).dtype)
    seen = torch.zeros(offset, dtype=torch.bool)
    for head in ("mlm", "classification") if cfg.kind == "encoder" else ("lm",):
        for name, where in _to_hf_state(cfg, ids, head).items():
            if name in hf_sd:
                index = where.reshape(-1).long()
                flat[index] = hf_sd[name].reshape(-1).to(flat.dtype)
                seen[index] = True
    ours = {key: flat[ids[key].reshape(-1).long()].reshape(shapes[key]) for key in shapes}
    uncovered = [key for key in shapes if not bool(seen[ids[key].reshape(-1).long()].all())]
    return ours, uncovered


# ---------------------------------------------------------------- public
def to_hf(model, head: str | None = None):
    """The transformers model with ``model``'s weights (same dtype and device, eval mode).

    ``head`` matters only for the encoder: "mlm" (default, ``BertForMaskedLM``) or
    "classification" (``BertForSequenceClassification``, needs ``n_classes > 0``).
    """
    tf = _transformers()
    cfg: ModelConfig = model.config
    if getattr(model, "conv_stem", None) is not None:
        raise UserError(f"cannot export an encoder with a convolutional stem ({cfg.conv_stem}) to transformers: "
                        "BertModel has no such layer; use tinylm's own checkpoints for it")
    hf_cfg = hf_config(cfg)
    head = head or ("mlm" if cfg.kind == "encoder" else "lm")
    classes = {"llama": tf.LlamaForCausalLM, "gemma": tf.GemmaForCausalLM, "gpt2": tf.GPT2LMHeadModel,
               "neox": tf.GPTNeoXForCausalLM}
    if cfg.kind == "encoder":
        if head not in ("mlm", "classification"):
            raise UserError(f"unknown encoder head {head!r}; use 'mlm' or 'classification'")
        if head == "classification" and not cfg.n_classes:
            raise UserError("the encoder has no classification head (n_classes = 0); export head='mlm'")
        cls = tf.BertForMaskedLM if head == "mlm" else tf.BertForSequenceClassification
    else:
        cls = classes[cfg.flavour]
    hf_model = cls(hf_cfg)
    state = _to_hf_state(cfg, model.state_dict(), head)
    missing, unexpected = hf_model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith(("position_ids", "token_type_ids"))]
    if missing or unexpected:  # a bug in the mapping, never a user mistake
        raise RuntimeError(f"HF mapping mismatch: missing {missing}, unexpected {unexpected}")
    ref = next(model.parameters())
    return hf_model.to(device=ref.device, dtype=ref.dtype).eval()


def from_hf(hf_model) -> Any:
    """Our model (Decoder or Encoder) with the weights of a supported transformers model."""
    from tinylm.models import build_model

    cfg = config_from_hf(hf_model.config)
    if cfg.kind == "encoder" and type(hf_model).__name__ == "BertForSequenceClassification":
        cfg = cfg.replace(n_classes=int(hf_model.config.num_labels))
    if cfg.flavour in ("gpt2", "neox"):  # their embeddings have no padding_idx
        cfg = cfg.replace(pad_token_id=None)
    hf_sd = hf_model.state_dict()
    ref = next(hf_model.parameters())
    with torch.device("meta"):
        model = build_model(cfg)
    shapes = {k: v.shape for k, v in model.state_dict().items()}
    model.to_empty(device=ref.device)
    model.reset_buffers_()
    ours, uncovered = _from_hf_state(cfg, {k: v.detach().cpu() for k, v in hf_sd.items()}, shapes)
    model.load_state_dict(ours)
    for key in uncovered:  # e.g. the MLM head when importing a BertForSequenceClassification
        model.init_parameter_(key)
    return model.to(dtype=ref.dtype)
