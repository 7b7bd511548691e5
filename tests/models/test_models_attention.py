"""The CPU low-precision attention path computes what SDPA computes."""

import pytest
import torch
import torch.nn.functional as F

from tinylm.models import build_model, resolve_model_config
from tinylm.models.layers import matmul_attention, padding_mask


@pytest.mark.parametrize("causal", [True, False])
def test_matmul_attention_equals_sdpa(causal):
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, 7, 8, generator=g) for _ in range(3))
    keep = torch.tensor([[1] * 7, [1] * 5 + [0] * 2])
    mask = padding_mask(keep, causal)
    for m in (None, mask):
        want = F.scaled_dot_product_attention(q, k, v, attn_mask=m, is_causal=causal and m is None)
        got = matmul_attention(q, k, v, m, causal, 0.0)
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_bf16_cpu_forward_and_gradients_follow_the_fp32_model():
    """A GQA model under CPU bf16 autocast (the matmul path) stays close to its fp32 (SDPA) self."""
    torch.manual_seed(0)
    model = build_model(resolve_model_config("L2-4(2)-64x4", vocab_size=97, max_seq_len=32))
    ids = torch.randint(97, (2, 16))
    ref = model(ids).float()
    ref.logsumexp(-1).mean().backward()
    ref_grad = model.layers[0].attn.qkv_proj.weight.grad.clone()
    model.zero_grad()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = model(ids).float()
    low.logsumexp(-1).mean().backward()
    assert (low - ref).abs().max() < 0.1
    grad = model.layers[0].attn.qkv_proj.weight.grad
    assert F.cosine_similarity(grad.flatten(), ref_grad.flatten(), dim=0) > 0.99


def test_fp32_cpu_attention_stays_sdpa_and_the_matmul_lever_matches_it(monkeypatch):
    """Issue 23 measured attention as two matmuls in fp32 too (bench/cpu_levers_fp32.py): no gain on
    either CPU kind, so fp32 keeps SDPA. The lever, switched on, computes SDPA's forward and gradients
    within 1e-5."""
    from tinylm.models import layers

    torch.manual_seed(0)
    model = build_model(resolve_model_config("L2-4(2)-64x4", vocab_size=97, max_seq_len=32))
    ids = torch.randint(97, (2, 16))
    calls = []
    original = layers.matmul_attention
    monkeypatch.setattr(layers, "matmul_attention", lambda *a: calls.append(1) or original(*a))

    def run():
        model.zero_grad()
        out = model(ids)
        out.logsumexp(-1).mean().backward()
        return out.detach(), model.layers[0].attn.qkv_proj.weight.grad.clone()

    want, want_grad = run()
    assert calls == []  # the default fp32 CPU path: SDPA
    monkeypatch.setattr(layers, "CPU_MATMUL_ATTENTION_FP32", True)
    got, got_grad = run()
    assert len(calls) == len(model.layers)  # switched on: two matmuls in every layer
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(got_grad, want_grad, atol=1e-5, rtol=1e-5)
