"""Parameter counts: the closed form equals the built modules, and the papers' sizes come out."""

import pytest
import torch

from tinylm.models import ModelConfig, build_model, count_parameters, list_presets, resolve_model_config

PRESETS = [name for name, _, _ in list_presets()]


def _numel_on_meta(cfg):
    with torch.device("meta"):
        model = build_model(cfg)
    return sum(p.numel() for p in model.parameters()), model


@pytest.mark.parametrize("name", PRESETS)
def test_closed_form_equals_modules(name):
    cfg = resolve_model_config(name)
    numel, model = _numel_on_meta(cfg)
    counts = count_parameters(cfg)
    assert counts["total"] == numel
    assert count_parameters(model) == counts
    assert counts["embedding"] + counts["non_embedding"] == counts["total"]
    matmul = sum(m.weight.numel() for n, m in model.named_modules()
                 if isinstance(m, torch.nn.Linear) and n not in ("pooler", "classifier"))
    if cfg.tie_embeddings:
        matmul += model.embed_tokens.weight.numel()  # the tied head is a matmul too
    assert counts["matmul_parameters"] == matmul


@pytest.mark.parametrize("cfg", [
    ModelConfig(flavour="llama", n_layers=2, n_heads=4, n_kv_heads=2, d_model=32, head_dim=12, d_ff=40,
                attn_bias=True, mlp_bias=True, tie_embeddings=True, vocab_size=50),
    ModelConfig(flavour="neox", n_layers=2, n_heads=4, d_model=32, vocab_size=50, attn_bias=False,
                tie_embeddings=True),
    ModelConfig(flavour="bert", n_layers=2, n_heads=4, d_model=32, vocab_size=50, n_classes=5,
                type_vocab_size=0),
])
def test_closed_form_for_unusual_shapes(cfg):
    assert count_parameters(cfg)["total"] == _numel_on_meta(cfg)[0]


def test_gpt2_124m_exact():
    assert count_parameters(resolve_model_config("gpt2-124m"))["total"] == 124_439_808


def test_babyllama2_345m_within_one_percent():
    total = count_parameters(resolve_model_config("babyllama2-345m"))["total"]
    assert abs(total - 345e6) / 345e6 < 0.01


def test_pythia_sizes_match_hub_models():
    assert count_parameters(resolve_model_config("pythia-70m"))["total"] == 70_426_624
    assert count_parameters(resolve_model_config("pythia-14m"))["total"] == 14_067_712


def test_forgetter_counts_match_their_notebooks():
    # keiji-miura/FORGETTER-BabyLM prints sum(p.numel())/1e6 per model: 221.3 for the Table 2
    # FORGETTER model and 170.1 for L16-8(4)-672x4-192 (same minGemma, 16 layers).
    assert round(count_parameters(resolve_model_config("forgetter-baby10m"))["total"] / 1e6, 1) == 221.3
    l16 = resolve_model_config("forgetter-baby10m", n_layers=16)
    assert round(count_parameters(l16)["total"] / 1e6, 1) == 170.1


def test_untied_head_is_matmul_not_embedding():
    counts = count_parameters(resolve_model_config("pythia-70m"))
    assert counts["embedding"] == 50304 * 512
    assert counts["matmul_parameters"] == 6 * (512 * 3 * 512 + 512 * 512 + 2 * 512 * 2048) + 50304 * 512
