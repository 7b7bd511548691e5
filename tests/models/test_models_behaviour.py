"""The model contract the training loop relies on: init, reinit, growth, causality, masks."""

import math

import pytest
import torch

from tinylm.errors import UserError
from tinylm.models import ModelConfig, build_model, count_parameters

V = 64
DECODERS = {
    "llama": dict(flavour="llama", n_kv_heads=2, pad_token_id=3),
    "gemma": dict(flavour="gemma", n_kv_heads=1, head_dim=16),
    "gpt2": dict(flavour="gpt2"),
    "neox": dict(flavour="neox"),
    "minGemma": dict(flavour="gemma", mlp_bias=True, activation="gelu", init_scheme="torch"),
}
ALL = dict(DECODERS, bert=dict(flavour="bert", pad_token_id=0, n_classes=2))


def _cfg(fields, **extra):
    base = dict(n_layers=2, n_heads=4, d_model=32, vocab_size=V, max_seq_len=16)
    base.update(fields)
    base.update(extra)
    return ModelConfig(**base)


def _clone_state(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("name", list(ALL))
def test_reinit_with_init_seed_reproduces_construction(name):
    torch.manual_seed(0)
    model = build_model(_cfg(ALL[name]))
    original = _clone_state(model)
    subset = [n for n, _ in model.named_parameters() if n.startswith("layers.1.") or n == "embed_tokens.weight"]
    with torch.no_grad():
        for n in subset:
            model.get_parameter(n).normal_()
    for n in reversed(subset):  # order must not matter
        model.init_parameter_(n, seed=model.init_seed)
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, original[k], atol=0, rtol=0)


def test_construction_is_deterministic_and_fresh_reinit_is_new_but_seeded():
    cfg = _cfg(DECODERS["llama"])
    torch.manual_seed(5)
    a = build_model(cfg)
    torch.manual_seed(5)
    b = build_model(cfg)
    assert a.init_seed == b.init_seed
    for (_, p), (_, q) in zip(a.named_parameters(), b.named_parameters()):
        assert torch.equal(p, q)
    name = "layers.0.attn.qkv_proj.weight"
    before = a.get_parameter(name).detach().clone()
    torch.manual_seed(9)
    fresh = a.init_parameter_(name).detach().clone()
    assert not torch.equal(fresh, before)
    torch.manual_seed(9)
    assert torch.equal(a.init_parameter_(name), fresh)


def test_init_rules_follow_the_references():
    gpt2 = build_model(_cfg(DECODERS["gpt2"], n_layers=4, d_model=64))
    scaled = gpt2.get_parameter("layers.0.attn.o_proj.weight").std().item()
    plain = gpt2.get_parameter("layers.0.attn.qkv_proj.weight").std().item()
    assert scaled == pytest.approx(0.02 / math.sqrt(2 * 4), rel=0.1)
    assert plain == pytest.approx(0.02, rel=0.1)
    assert torch.all(gpt2.get_parameter("layers.0.attn.qkv_proj.bias") == 0)
    assert torch.all(gpt2.get_parameter("layers.0.attn_norm.weight") == 1)
    gemma = build_model(_cfg(DECODERS["gemma"]))
    assert torch.all(gemma.get_parameter("norm.weight") == 0)  # (1 + w) starts as identity
    mingemma = build_model(_cfg(DECODERS["minGemma"]))  # PyTorch module defaults, as minGemma
    assert mingemma.embed_tokens.weight.std().item() == pytest.approx(1.0, rel=0.1)
    w = mingemma.get_parameter("layers.0.mlp.down_proj.weight")
    assert w.abs().max().item() <= 1 / math.sqrt(w.shape[1])
    assert mingemma.get_parameter("layers.0.mlp.down_proj.bias").abs().sum() > 0


def test_padding_row_is_zero_and_stays_zero():
    model = build_model(_cfg(DECODERS["llama"]))
    pad = model.config.pad_token_id
    assert torch.all(model.embed_tokens.weight[pad] == 0)
    model.init_parameter_("embed_tokens.weight")
    assert torch.all(model.embed_tokens.weight[pad] == 0)
    ids = torch.tensor([[1, pad, 2, pad]])
    model(ids).sum().backward()
    assert torch.all(model.embed_tokens.weight.grad[pad] == 0)


@pytest.mark.parametrize("name", list(ALL))
def test_append_layers_adds_trainable_blocks(name):
    torch.manual_seed(0)
    model = build_model(_cfg(ALL[name]))
    ids = torch.randint(1, V, (2, 8))
    new = model.append_layers(2)
    assert model.config.n_layers == 4 and len(model.layers) == 4
    params = dict(model.named_parameters())
    assert new and all(n.startswith(("layers.2.", "layers.3.")) and n in params for n in new)
    assert set(new) == {n for n in params if n.startswith(("layers.2.", "layers.3."))}
    assert not torch.equal(params["layers.2.attn.qkv_proj.weight"], params["layers.3.attn.qkv_proj.weight"])
    assert count_parameters(model)["total"] == sum(p.numel() for p in model.parameters())
    out = model(ids)
    assert out.shape == (2, 8, V) and torch.isfinite(out).all()
    out.float().pow(2).mean().backward()
    assert all(params[n].grad is not None and params[n].requires_grad for n in new)


def test_append_layers_rejects_nonsense():
    model = build_model(_cfg(DECODERS["gpt2"]))
    with pytest.raises(UserError):
        model.append_layers(0)


@pytest.mark.parametrize("name", list(DECODERS))
def test_decoder_is_causal(name):
    torch.manual_seed(0)
    model = build_model(_cfg(DECODERS[name])).eval()
    ids = torch.randint(1, V, (1, 12))
    changed = ids.clone()
    changed[0, 7] = (ids[0, 7] + 1) % V
    with torch.no_grad():
        a, b = model(ids), model(changed)
    torch.testing.assert_close(a[:, :7], b[:, :7], atol=0, rtol=0)
    assert not torch.allclose(a[:, 7:], b[:, 7:])


@pytest.mark.parametrize("name", list(ALL))
def test_all_ones_mask_equals_no_mask(name):
    # exercises the explicit-mask path (and, with GQA, the repeated-kv path) against the fast path
    torch.manual_seed(0)
    model = build_model(_cfg(ALL[name])).eval()
    ids = torch.randint(1, V, (2, 9))
    with torch.no_grad():
        torch.testing.assert_close(model(ids, torch.ones_like(ids)), model(ids), atol=1e-5, rtol=1e-5)


def test_left_padding_gives_finite_logits():
    model = build_model(_cfg(DECODERS["llama"])).eval()
    ids = torch.randint(4, V, (2, 6))
    mask = torch.ones_like(ids)
    mask[0, :3] = 0
    with torch.no_grad():
        assert torch.isfinite(model(ids, mask)).all()


def test_too_long_input_is_user_error():
    model = build_model(_cfg(DECODERS["gpt2"]))
    with pytest.raises(UserError, match="max_seq_len"):
        model(torch.zeros(1, 17, dtype=torch.long))


def test_encoder_heads():
    model = build_model(_cfg(ALL["bert"]))
    ids = torch.randint(1, V, (3, 8))
    assert model(ids).shape == (3, 8, V)
    assert model.classify(ids, torch.ones_like(ids)).shape == (3, 2)
    assert model.lm_head is None and model.conv_stem is None
    no_head = build_model(_cfg(ALL["bert"], n_classes=0))
    with pytest.raises(UserError, match="n_classes"):
        no_head.classify(ids)


def test_interface_attributes():
    model = build_model(_cfg(DECODERS["neox"]))
    assert isinstance(model.layers, torch.nn.ModuleList) and len(model.layers) == 2
    assert isinstance(model.embed_tokens, torch.nn.Embedding)
    assert isinstance(model.lm_head, torch.nn.Linear)  # untied
    assert build_model(_cfg(DECODERS["gpt2"])).lm_head is None  # tied
    assert model.config is not None and model.config.n_layers == 2


def test_dropout_only_in_training():
    model = build_model(_cfg(DECODERS["llama"], dropout=0.5))
    ids = torch.randint(1, V, (1, 8))
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(ids), model(ids))
    model.train()
    with torch.no_grad():
        assert not torch.equal(model(ids), model(ids))
