"""Each flavour gives the logits of its Hugging Face reference class, and imports back exactly."""

import pytest
import torch

from tinylm.errors import UserError
from tinylm.models import ModelConfig, build_model, resolve_model_config

pytest.importorskip("transformers")
from tinylm.models.hf import from_hf, to_hf  # noqa: E402

V = 97
TINY = {
    "llama-gqa": dict(flavour="llama", n_kv_heads=2, d_ff=48, pad_token_id=0, rope_theta=500.0),
    "llama-tied-bias-free-head-dim": dict(flavour="llama", head_dim=12, d_ff=48, tie_embeddings=True,
                                          attn_bias=True, mlp_bias=True),
    "gemma-mqa": dict(flavour="gemma", n_kv_heads=1, head_dim=16, d_ff=64, rope_theta=1000.0),
    "gpt2": dict(flavour="gpt2"),
    "neox-partial-rotary": dict(flavour="neox", rotary_pct=0.5),
    "neox-sequential": dict(flavour="neox", parallel_residual=False, rotary_pct=1.0),
    "bert": dict(flavour="bert", pad_token_id=0, n_classes=3),
}


def _tiny(fields):
    cfg = ModelConfig(n_layers=2, n_heads=4, d_model=32, vocab_size=V, max_seq_len=16, **fields)
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    with torch.no_grad():  # move norms and biases off their init so (1 + w), biases etc. matter
        for name, p in model.named_parameters():
            if "norm" in name or name.endswith("bias"):
                p.add_(0.1 * torch.randn_like(p))
    return model


@pytest.fixture(params=list(TINY), ids=list(TINY))
def pair(request):
    model = _tiny(TINY[request.param])
    return model, to_hf(model)


def _inputs():
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(1, V, (2, 10), generator=g)
    mask = torch.ones(2, 10, dtype=torch.long)
    mask[1, 6:] = 0
    padded = ids.clone()
    padded[1, 6:] = 0
    return ids, padded, mask


@torch.no_grad()
def test_logits_match_reference(pair):
    model, hf = pair
    ids, _, _ = _inputs()
    torch.testing.assert_close(model(ids), hf(input_ids=ids).logits, atol=1e-5, rtol=1e-5)


@torch.no_grad()
def test_right_padding_matches_reference_and_unpadded(pair):
    model, hf = pair
    _, padded, mask = _inputs()
    ours = model(padded, attention_mask=mask)
    ref = hf(input_ids=padded, attention_mask=mask).logits
    keep = mask.bool()
    torch.testing.assert_close(ours[keep], ref[keep], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ours[1, :6], model(padded[1:, :6])[0], atol=1e-5, rtol=1e-5)


@torch.no_grad()
def test_round_trip_from_hf(pair):
    model, hf = pair
    ids, _, _ = _inputs()
    back = from_hf(hf)
    expected = model.config.replace(n_classes=0) if model.config.kind == "encoder" else model.config
    if model.config.flavour in ("gpt2", "neox"):
        expected = expected.replace(pad_token_id=None)
    assert back.config == expected
    torch.testing.assert_close(back(ids), model(ids), atol=0, rtol=0)


@torch.no_grad()
def test_bert_classification_head_matches_reference():
    model = _tiny(TINY["bert"])
    _, padded, mask = _inputs()
    hf = to_hf(model, head="classification")
    ours = model.classify(padded, attention_mask=mask)
    torch.testing.assert_close(ours, hf(input_ids=padded, attention_mask=mask).logits, atol=1e-5, rtol=1e-5)
    back = from_hf(hf)
    torch.testing.assert_close(back.classify(padded, mask), ours, atol=0, rtol=0)
    token_types = torch.zeros_like(padded)
    token_types[:, 5:] = 1
    torch.testing.assert_close(model(padded, mask, token_type_ids=token_types),
                               to_hf(model)(input_ids=padded, attention_mask=mask,
                                            token_type_ids=token_types).logits, atol=1e-5, rtol=1e-5)


def test_unexportable_configs_say_what_to_change():
    forgetter = resolve_model_config("forgetter-baby10m", n_layers=1, d_model=32, n_heads=2, n_kv_heads=1,
                                     head_dim=16, d_ff=64, vocab_size=V)
    with pytest.raises(UserError, match="mlp_bias"):
        to_hf(build_model(forgetter))
    gqa_gpt2 = ModelConfig(flavour="gpt2", n_layers=1, n_heads=4, n_kv_heads=2, d_model=32, vocab_size=V)
    with pytest.raises(UserError, match="n_kv_heads"):
        to_hf(build_model(gqa_gpt2))
