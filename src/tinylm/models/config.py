"""The one description of a model's shape: ``ModelConfig``.

Everything that decides a model's parameters and its forward pass lives here, as plain JSON-able
values, so a run directory's ``config.yaml`` rebuilds exactly the same network. Fields left as
``None`` are filled from the flavour's reference architecture in ``__post_init__``; after
construction every field is concrete, so ``to_dict()`` records what was really built (a later
change of a default can never silently change an old run).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from tinylm.errors import UserError

KINDS = ("decoder", "encoder")
ACTIVATIONS = ("silu", "gelu", "gelu_tanh", "relu")
INIT_SCHEMES = ("normal", "torch")

# What each flavour's reference (Hugging Face class) does; None-valued config fields take these.
FLAVOUR_DEFAULTS: dict[str, dict[str, Any]] = {
    # LlamaForCausalLM: RMSNorm, SwiGLU, RoPE, GQA, no biases.
    "llama": dict(kind="decoder", activation="silu", tie_embeddings=False, norm_eps=1e-6,
                  attn_bias=False, mlp_bias=False, parallel_residual=False, rotary_pct=1.0),
    # GemmaForCausalLM: (1+w) RMSNorm, sqrt(d) embedding scale, GeGLU (tanh), tied.
    "gemma": dict(kind="decoder", activation="gelu_tanh", tie_embeddings=True, norm_eps=1e-6,
                  attn_bias=False, mlp_bias=False, parallel_residual=False, rotary_pct=1.0),
    # GPT2LMHeadModel: learned positions, LayerNorm, GELU ("gelu_new" = tanh), tied, biases.
    "gpt2": dict(kind="decoder", activation="gelu_tanh", tie_embeddings=True, norm_eps=1e-5,
                 attn_bias=True, mlp_bias=True, parallel_residual=False, rotary_pct=1.0),
    # GPTNeoXForCausalLM (Pythia): parallel attention + MLP, partial rotary, untied, biases.
    "neox": dict(kind="decoder", activation="gelu", tie_embeddings=False, norm_eps=1e-5,
                 attn_bias=True, mlp_bias=True, parallel_residual=True, rotary_pct=0.25),
    # BertForMaskedLM: post-LN, learned positions + token types, GELU, MLM decoder tied.
    "bert": dict(kind="encoder", activation="gelu", tie_embeddings=True, norm_eps=1e-12,
                 attn_bias=True, mlp_bias=True, parallel_residual=False, rotary_pct=1.0),
}
FLAVOURS = tuple(FLAVOUR_DEFAULTS)
ROPE_FLAVOURS = ("llama", "gemma", "neox")
GATED_FLAVOURS = ("llama", "gemma")


@dataclass
class ModelConfig:
    """Shape and architecture of one model; see FLAVOUR_DEFAULTS for what ``None`` becomes."""

    flavour: str = "llama"
    kind: str | None = None  # "decoder" | "encoder"; follows the flavour (bert is the encoder)
    n_layers: int = 6
    n_heads: int = 8  # query heads
    n_kv_heads: int | None = None  # grouped-query attention; None = n_heads (plain multi-head)
    d_model: int = 512  # width of the residual stream
    d_ff: int | None = None  # MLP hidden width; None = 4 * d_model (FORGETTER's fixed "x4")
    head_dim: int | None = None  # free of the width (FORGETTER, Gemma); None = d_model // n_heads
    vocab_size: int = 50257  # GPT-2 tokenizer, as FORGETTER
    max_seq_len: int = 512  # learned position table size, or the RoPE cache length
    rope_theta: float = 10000.0
    rotary_pct: float | None = None  # fraction of head_dim that is rotated (Pythia: 0.25)
    tie_embeddings: bool | None = None  # output head shares the token embedding
    norm_eps: float | None = None
    dropout: float = 0.0  # embeddings, attention probabilities, residual branches
    attn_bias: bool | None = None
    mlp_bias: bool | None = None  # minGemma (FORGETTER) keeps nn.Linear's default biases here
    activation: str | None = None  # silu | gelu (exact) | gelu_tanh | relu
    parallel_residual: bool | None = None  # x + attn(ln1 x) + mlp(ln2 x), GPT-NeoX/Pythia
    pad_token_id: int | None = None  # its embedding row starts at zero and gets no gradient
    init_std: float = 0.02
    init_scheme: str = "normal"  # "normal": N(0, init_std) as HF; "torch": nn.Linear/Embedding defaults
    type_vocab_size: int | None = None  # encoder token types (BERT: 2); decoders: 0
    n_classes: int = 0  # encoder sequence-classification head; 0 = no head
    conv_stem: str | None = None  # encoder conv layers before block 1, "2x64k3x3" (models/conv_stem.py)

    def __post_init__(self) -> None:
        if self.flavour not in FLAVOUR_DEFAULTS:
            raise UserError(
                f"unknown model flavour {self.flavour!r}; choose one of {', '.join(FLAVOURS)}"
            )
        defaults = FLAVOUR_DEFAULTS[self.flavour]
        for key, value in defaults.items():
            if key == "kind":
                continue
            if getattr(self, key) is None:
                setattr(self, key, value)
        if self.kind is None:
            self.kind = defaults["kind"]
        if self.n_kv_heads is None:
            self.n_kv_heads = self.n_heads
        if self.head_dim is None and _is_pos_int(self.n_heads) and _is_pos_int(self.d_model):
            if self.d_model % self.n_heads:
                raise UserError(
                    f"model config: d_model ({self.d_model}) is not divisible by n_heads "
                    f"({self.n_heads}); set head_dim explicitly (e.g. spec 'L6-8-512x4-64')"
                )
            self.head_dim = self.d_model // self.n_heads
        if self.d_ff is None and _is_pos_int(self.d_model):
            self.d_ff = 4 * self.d_model
        if self.type_vocab_size is None:
            self.type_vocab_size = 2 if self.kind == "encoder" else 0
        self.validate()

    # ------------------------------------------------------------------ validation
    def validate(self) -> None:
        """Raise UserError naming the first inconsistent field and how to fix it."""
        if self.kind not in KINDS:
            raise UserError(f"model config: kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        expected_kind = FLAVOUR_DEFAULTS[self.flavour]["kind"]
        if self.kind != expected_kind:
            raise UserError(
                f"model config: flavour {self.flavour!r} is an {expected_kind}, not an {self.kind}; "
                f"use flavour 'bert' for an encoder, or one of llama/gemma/gpt2/neox for a decoder"
            )
        for name in ("n_layers", "n_heads", "n_kv_heads", "d_model", "d_ff", "head_dim",
                     "vocab_size", "max_seq_len"):
            if not _is_pos_int(getattr(self, name)):
                raise UserError(
                    f"model config: {name} must be a positive integer, got {getattr(self, name)!r}"
                )
        if self.n_heads % self.n_kv_heads:
            raise UserError(
                f"model config: n_heads ({self.n_heads}) must be a multiple of n_kv_heads "
                f"({self.n_kv_heads}), e.g. 8 query heads with 4, 2 or 1 kv heads"
            )
        if self.activation not in ACTIVATIONS:
            raise UserError(
                f"model config: unknown activation {self.activation!r}; choose one of {', '.join(ACTIVATIONS)}"
            )
        if self.init_scheme not in INIT_SCHEMES:
            raise UserError(
                f"model config: init_scheme must be one of {', '.join(INIT_SCHEMES)}, got {self.init_scheme!r}"
            )
        if not 0.0 <= float(self.dropout) < 1.0:
            raise UserError(f"model config: dropout must be in [0, 1), got {self.dropout!r}")
        if not float(self.init_std) > 0:
            raise UserError(f"model config: init_std must be positive, got {self.init_std!r}")
        if not float(self.norm_eps) > 0:
            raise UserError(f"model config: norm_eps must be positive, got {self.norm_eps!r}")
        if self.flavour in ROPE_FLAVOURS:
            if not 0.0 < float(self.rotary_pct) <= 1.0:
                raise UserError(f"model config: rotary_pct must be in (0, 1], got {self.rotary_pct!r}")
            if self.rotary_dim % 2 or self.rotary_dim == 0:
                raise UserError(
                    f"model config: rotary_pct * head_dim = {self.rotary_dim} must be a positive even "
                    f"number; change rotary_pct ({self.rotary_pct}) or head_dim ({self.head_dim})"
                )
            if not float(self.rope_theta) > 0:
                raise UserError(f"model config: rope_theta must be positive, got {self.rope_theta!r}")
        if self.pad_token_id is not None and not (
            isinstance(self.pad_token_id, int) and 0 <= self.pad_token_id < self.vocab_size
        ):
            raise UserError(
                f"model config: pad_token_id ({self.pad_token_id!r}) must be an id in [0, vocab_size="
                f"{self.vocab_size}) or null"
            )
        if not isinstance(self.type_vocab_size, int) or self.type_vocab_size < 0:
            raise UserError(f"model config: type_vocab_size must be >= 0, got {self.type_vocab_size!r}")
        if self.kind == "decoder" and self.type_vocab_size:
            raise UserError("model config: token types (type_vocab_size) are an encoder feature; set it to 0")
        if self.kind == "encoder" and self.parallel_residual:
            raise UserError("model config: parallel_residual is a decoder option (GPT-NeoX); set it false for bert")
        if not isinstance(self.n_classes, int) or self.n_classes < 0:
            raise UserError(f"model config: n_classes must be an integer >= 0, got {self.n_classes!r}")
        if self.conv_stem is not None:
            if self.kind != "encoder":
                raise UserError("model config: conv_stem exists only on the encoder (flavour 'bert'); set it to null")
            from tinylm.models.conv_stem import parse_conv_stem

            self.conv_stem = parse_conv_stem(self.conv_stem).text  # canonical, so configs compare equal
        if self.kind == "decoder" and self.n_classes:
            raise UserError(
                "model config: the classification head (n_classes) exists only on the encoder; "
                "use flavour 'bert' or set n_classes to 0"
            )

    # ------------------------------------------------------------------ derived
    @property
    def rotary_dim(self) -> int:
        """Rotated channels per head (0 for flavours with learned positions)."""
        if self.flavour not in ROPE_FLAVOURS:
            return 0
        return int(self.head_dim * float(self.rotary_pct))

    @property
    def gated_mlp(self) -> bool:
        return self.flavour in GATED_FLAVOURS

    @property
    def learned_positions(self) -> bool:
        return self.flavour not in ROPE_FLAVOURS

    @property
    def spec(self) -> str | None:
        """The FORGETTER-style spec of this shape (``L22-8(4)-672x4-192``), or None when d_ff is
        not a whole or short decimal multiple of d_model (BabyLlama-2's 960 -> 2560)."""
        kv = f"({self.n_kv_heads})" if self.n_kv_heads != self.n_heads else ""
        for digits in range(0, 4):
            mult = round(self.d_ff / self.d_model, digits)
            if mult * self.d_model == self.d_ff:
                mult_s = f"{mult:.{digits}f}" if digits else str(int(mult))
                return f"L{self.n_layers}-{self.n_heads}{kv}-{self.d_model}x{mult_s}-{self.head_dim}"
        return None

    # ------------------------------------------------------------------ (de)serialisation
    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict with every field concrete."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelConfig":
        """Inverse of ``to_dict``; an unknown key is a UserError listing the valid ones."""
        if not isinstance(data, dict):
            raise UserError(f"model config must be a mapping of field: value, got {type(data).__name__}")
        valid = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(data) - set(valid))
        if unknown:
            raise UserError(
                f"unknown model config key(s) {', '.join(map(repr, unknown))}; valid keys: {', '.join(valid)}"
            )
        return cls(**data)

    def replace(self, **changes: Any) -> "ModelConfig":
        """A copy with ``changes`` applied and validated (unknown keys are a UserError)."""
        data = self.to_dict()
        data.update(changes)
        return type(self).from_dict(data)


def _is_pos_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0
