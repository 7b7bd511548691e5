"""Specs, presets and ModelConfig: the user-facing ways to name a model, and their errors."""

import json

import pytest

from tinylm.errors import UserError
from tinylm.models import ModelConfig, list_presets, parse_spec, resolve_model_config


def test_forgetter_spec_fields():
    cfg = parse_spec("L22-8(4)-672x4-192")
    assert (cfg.n_layers, cfg.n_heads, cfg.n_kv_heads, cfg.d_model, cfg.d_ff, cfg.head_dim) == (
        22, 8, 4, 672, 4 * 672, 192)
    assert cfg.flavour == "llama"
    assert cfg.spec == "L22-8(4)-672x4-192"


def test_spec_optional_parts_and_flavour():
    cfg = parse_spec("L6-8-512x4", flavour="gpt2")
    assert (cfg.n_kv_heads, cfg.head_dim, cfg.d_ff, cfg.flavour) == (8, 64, 2048, "gpt2")
    assert parse_spec("L24-6(3)-648×4-240").d_ff == 2592  # the paper's own "×"
    assert parse_spec("L2-4-64x2.5").d_ff == 160


@pytest.mark.parametrize("bad", ["L22-8(4)-672", "22-8-672x4", "L22-8(4-672x4", "Lx-8-672x4",
                                 "L22-8(4)-672x4-", "L0-8-512x4", ""])
def test_malformed_spec_names_the_format(bad):
    with pytest.raises(UserError) as err:
        parse_spec(bad)
    assert "L<layers>-<heads>[(<kv heads>)]-<width>x<ffn multiple>[-<head dim>]" in str(err.value) or (
        "must be positive" in str(err.value))


def test_kv_heads_must_divide_heads():
    with pytest.raises(UserError, match="multiple of n_kv_heads"):
        parse_spec("L2-8(3)-64x4")


def test_unknown_preset_lists_valid_ones():
    with pytest.raises(UserError) as err:
        resolve_model_config("gpt3-175b")
    message = str(err.value)
    for name, _, _ in list_presets():
        assert name in message


def test_spec_like_name_explains_format_instead():
    with pytest.raises(UserError, match="expected L<layers>"):
        resolve_model_config("L22-8(4)")


def test_resolve_preset_spec_and_overrides():
    assert resolve_model_config("gpt2-124m").flavour == "gpt2"
    cfg = resolve_model_config("L4-4-128x4", flavour="neox", vocab_size=1000)
    assert (cfg.flavour, cfg.vocab_size, cfg.rotary_pct, cfg.parallel_residual) == ("neox", 1000, 0.25, True)
    wider = resolve_model_config("gpt2-124m", d_model=384)  # derived fields follow the override
    assert (wider.head_dim, wider.d_ff) == (32, 1536)
    with pytest.raises(UserError, match="valid keys"):
        resolve_model_config("gpt2-124m", n_layer=3)


def test_config_round_trips_through_json():
    for _, cfg, _ in list_presets():
        data = json.loads(json.dumps(cfg.to_dict()))
        assert ModelConfig.from_dict(data) == cfg


def test_unknown_config_key_is_user_error_listing_valid_keys():
    data = ModelConfig().to_dict()
    data["n_experts"] = 8
    with pytest.raises(UserError) as err:
        ModelConfig.from_dict(data)
    assert "n_experts" in str(err.value) and "n_layers" in str(err.value)


@pytest.mark.parametrize("fields, fragment", [
    (dict(flavour="mamba"), "unknown model flavour"),
    (dict(flavour="bert", kind="decoder"), "is an encoder"),
    (dict(n_layers=0), "n_layers must be a positive integer"),
    (dict(d_model=100, n_heads=8), "not divisible by n_heads"),
    (dict(activation="tanh"), "unknown activation"),
    (dict(pad_token_id=99, vocab_size=50), "pad_token_id"),
    (dict(dropout=1.5), "dropout"),
    (dict(n_classes=2), "classification head"),
    (dict(flavour="neox", head_dim=6, rotary_pct=0.5), "even"),
])
def test_config_validation_messages(fields, fragment):
    with pytest.raises(UserError, match=fragment):
        ModelConfig(**fields)


def test_flavour_defaults_are_filled_and_concrete():
    cfg = ModelConfig(flavour="gemma", d_model=64, n_heads=4)
    assert cfg.tie_embeddings and cfg.activation == "gelu_tanh" and cfg.norm_eps == 1e-6
    assert all(v is not None for k, v in cfg.to_dict().items() if k not in ("pad_token_id", "conv_stem"))
    assert ModelConfig(flavour="bert").kind == "encoder" and ModelConfig(flavour="bert").type_vocab_size == 2
