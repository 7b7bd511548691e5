"""Named models from the papers, so a recipe can say ``model: babyllama2-345m``.

Each preset stores only the fields its paper fixes; everything else (head_dim, d_ff, biases, ...)
is derived by ``ModelConfig`` from the flavour, so an override such as ``d_model=768`` re-derives
the dependent fields instead of leaving stale ones behind.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tinylm.errors import UserError
from tinylm.models.config import ModelConfig
from tinylm.models.spec import looks_like_spec, parse_spec, parse_spec_fields


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    fields: dict[str, Any]


def _forgetter(spec: str) -> dict[str, Any]:
    # minGemma as FORGETTER ran it (keiji-miura/FORGETTER-BabyLM notebooks): GPT-2 tokenizer,
    # 512 tokens, rope_theta 1000, eps 1e-6, nn.Linear's default biases in the MLP, exact GELU
    # (F.gelu), tied embeddings, PyTorch default init (RMSNorm weights zero). With the MLP biases the
    # parameter counts equal the notebooks' (e.g. 221.3M for L22-8(4)-672x4-192).
    return dict(parse_spec_fields(spec), flavour="gemma", vocab_size=50257, max_seq_len=512,
                rope_theta=1000.0, norm_eps=1e-6, mlp_bias=True, activation="gelu",
                init_scheme="torch")


def _babyllama(**fields: Any) -> dict[str, Any]:
    # BabyLlama-2 trains LlamaForCausalLM from LlamaConfig defaults (scripts/train_and_eval.py):
    # tie_word_embeddings False, rms_norm_eps 1e-6, rope_theta 1e4, max positions 2 x 128 = 256,
    # 16000-token BPE whose first special token <pad> is id 0.
    return dict(flavour="llama", vocab_size=16000, max_seq_len=256, tie_embeddings=False,
                norm_eps=1e-6, rope_theta=10000.0, pad_token_id=0, **fields)


def _pythia(**fields: Any) -> dict[str, Any]:
    # EleutherAI Pythia suite as shipped on the hub (GPTNeoXForCausalLM configs).
    return dict(flavour="neox", vocab_size=50304, max_seq_len=2048, rotary_pct=0.25,
                rope_theta=10000.0, tie_embeddings=False, parallel_residual=True, norm_eps=1e-5,
                **fields)


def _bert(n_layers: int, n_heads: int, conv_stem: str | None = None) -> dict[str, Any]:
    # Tiny-language-models committees (Gross et al. 2025) and their repo Rg32601/Tiny-Language-Models:
    # hidden = 64 x heads, intermediate = 4 x hidden, 128 positions, bert-base-uncased vocab (30522,
    # [PAD] = 0), BertConfig defaults otherwise (2 token types, eps 1e-12, dropout 0.1).
    return dict(flavour="bert", n_layers=n_layers, n_heads=n_heads, d_model=64 * n_heads, vocab_size=30522,
                max_seq_len=128, pad_token_id=0, type_vocab_size=2, norm_eps=1e-12, dropout=0.1,
                **({"conv_stem": conv_stem} if conv_stem else {}))


_PRESETS = [
    # FORGETTER (Miura et al.), Table 2: best normal model for Baby10M (val loss 3.0457).
    Preset("forgetter-baby10m-normal", "FORGETTER Table 2, Baby10M normal: minGemma L48-3(1)-648x4-288",
           _forgetter("L48-3(1)-648x4-288")),
    # FORGETTER, Table 2: best FORGETTER model for Baby10M (val loss 3.0053).
    Preset("forgetter-baby10m", "FORGETTER Table 2, Baby10M FORGETTER: minGemma L22-8(4)-672x4-192",
           _forgetter("L22-8(4)-672x4-192")),
    # FORGETTER, Table 3: best normal model for Baby100M (val loss 2.4691).
    Preset("forgetter-baby100m-normal", "FORGETTER Table 3, Baby100M normal: minGemma L18-8(4)-576x4-256",
           _forgetter("L18-8(4)-576x4-256")),
    # FORGETTER, Table 3: best FORGETTER model for Baby100M (val loss 2.4374).
    Preset("forgetter-baby100m", "FORGETTER Table 3, Baby100M FORGETTER: minGemma L16-9(3)-612x4-224",
           _forgetter("L16-9(3)-612x4-224")),
    # BabyLlama-2 (Tastet & Timiryasov 2024), Table 1: the 345M student/teacher architecture.
    Preset("babyllama2-345m", "BabyLlama-2 Table 1: Llama 32 layers, 15(5) heads, 960 wide, 2560 hidden, vocab 16000",
           _babyllama(n_layers=32, n_heads=15, n_kv_heads=5, d_model=960, d_ff=2560)),
    # BabyLlama-2, Appendix B: the 16M model used for early experiments.
    Preset("babyllama2-16m", "BabyLlama-2 App. B: Llama 8 layers, 8 heads, 256 wide, 1024 hidden, vocab 16000",
           _babyllama(n_layers=8, n_heads=8, d_model=256, d_ff=1024)),
    # GPT-2 small (Radford et al. 2019) as HF gpt2: 124,439,808 parameters with the tied head.
    Preset("gpt2-124m", "GPT-2 small: 12 layers, 12 heads, 768 wide, 1024 positions, tied",
           dict(flavour="gpt2", n_layers=12, n_heads=12, d_model=768, vocab_size=50257,
                max_seq_len=1024, norm_eps=1e-5)),
    # Pythia-14M (Biderman et al. 2023) as EleutherAI/pythia-14m.
    Preset("pythia-14m", "Pythia-14M: GPT-NeoX 6 layers, 4 heads, 128 wide, rotary 25%, untied",
           _pythia(n_layers=6, n_heads=4, d_model=128)),
    # Pythia-70M as EleutherAI/pythia-70m (70,426,624 parameters).
    Preset("pythia-70m", "Pythia-70M: GPT-NeoX 6 layers, 8 heads, 512 wide, rotary 25%, untied",
           _pythia(n_layers=6, n_heads=8, d_model=512)),
    # Tiny LMs committees: BERT-6, the deep reference (6 blocks, 12 heads, 768 wide).
    Preset("bert-6", "Tiny-LM committees BERT-6: 6 blocks, 12 heads, 768 wide, 128 tokens",
           _bert(n_layers=6, n_heads=12)),
    # Tiny LMs committees, Table 9: BERT-1 without convolutions, 12 heads (768 wide).
    Preset("bert-1", "Tiny-LM committees BERT-1 (Table 9): 1 block, 12 heads, 768 wide",
           _bert(n_layers=1, n_heads=12)),
    # Tiny LMs committees, Table 8: the committee's convolution-free BERT-1 member, 24 heads (1536 wide).
    Preset("bert-1-24h", "Tiny-LM committees BERT-1 (Table 8): 1 block, 24 heads, 1536 wide",
           _bert(n_layers=1, n_heads=24)),
    # Tiny LMs committees, Table 8 rows 1, 2, 4, 5: BERT-1 with convolution layers before the block.
    Preset("bert-1-8h-conv2x64k3x3", "Tiny-LM committees BERT-1 (Table 8): 2 CLs, 64 filters, 3x3; 8 heads",
           _bert(n_layers=1, n_heads=8, conv_stem="2x64k3x3")),
    Preset("bert-1-conv2x64k3x3", "Tiny-LM committees BERT-1 (Table 8): 2 CLs, 64 filters, 3x3; 12 heads",
           _bert(n_layers=1, n_heads=12, conv_stem="2x64k3x3")),
    Preset("bert-1-conv2x64k16x3", "Tiny-LM committees BERT-1 (Table 8): 2 CLs, 64 filters, 16x3; 12 heads",
           _bert(n_layers=1, n_heads=12, conv_stem="2x64k16x3")),
    Preset("bert-1-conv3x32k3x3", "Tiny-LM committees BERT-1 (Table 8): 3 CLs, 32 filters, 3x3; 12 heads",
           _bert(n_layers=1, n_heads=12, conv_stem="3x32k3x3")),
]
# The five BERT-1 members of Table 8's soft committee, in the table's order.
TABLE8_COMMITTEE = ("bert-1-8h-conv2x64k3x3", "bert-1-conv2x64k3x3", "bert-1-24h", "bert-1-conv2x64k16x3",
                    "bert-1-conv3x32k3x3")
PRESETS: dict[str, Preset] = {p.name: p for p in _PRESETS}


def list_presets() -> list[tuple[str, ModelConfig, str]]:
    """Every preset as (name, resolved config, one-line description citing its source)."""
    return [(p.name, ModelConfig.from_dict(dict(p.fields)), p.description) for p in _PRESETS]


def resolve_model_config(name_or_spec: str, flavour: str | None = None, **overrides: Any) -> ModelConfig:
    """A preset name (``gpt2-124m``) or a spec (``L22-8(4)-672x4-192``), with optional overrides.

    A ``+conv<stem>`` suffix adds the committee paper's convolutional stem (``bert-1+conv2x64k3x3``).

    ``flavour`` replaces a preset's flavour or chooses the spec's (default llama). Overrides are
    applied before derived fields are filled, so ``d_model=...`` also resizes head_dim and d_ff
    unless those are given too.
    """
    if isinstance(name_or_spec, ModelConfig):
        return name_or_spec.replace(**({"flavour": flavour} if flavour else {}), **overrides)
    if not isinstance(name_or_spec, str) or not name_or_spec.strip():
        raise UserError(f"model must be a preset name or a spec string, got {name_or_spec!r}; "
                        f"valid presets: {', '.join(PRESETS)}")
    key = name_or_spec.strip().lower()
    if "+" in key:  # "bert-1+conv2x64k3x3": a base model with a convolutional stem
        base, _, stem = name_or_spec.strip().partition("+")
        if not stem.lower().startswith("conv"):
            raise UserError(f"unknown model suffix {'+' + stem!r} in {name_or_spec!r}; the only suffix is a "
                            "convolutional stem such as '+conv2x64k3x3'")
        return resolve_model_config(base, flavour=flavour, **{"conv_stem": stem[4:], **overrides})
    if key in PRESETS:
        fields = dict(PRESETS[key].fields)
        if flavour:
            fields["flavour"] = flavour
        fields.update(overrides)
        return ModelConfig.from_dict(fields)
    if looks_like_spec(name_or_spec):
        return parse_spec(name_or_spec, flavour=flavour, **overrides)
    raise UserError(
        f"unknown model {name_or_spec!r}; give a preset ({', '.join(PRESETS)}) or a spec like "
        f"'L22-8(4)-672x4-192'"
    )
