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
