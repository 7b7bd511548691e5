"""The decoding cache: logits read one token at a time from the cache equal a full recomputation."""

import pytest
import torch

from tinylm.errors import UserError
from tinylm.models import ModelConfig, build_model

FLAVOURS = {  # each flavour's own position scheme and attention shape
    "llama": dict(n_kv_heads=2),  # RoPE, grouped-query attention
    "gemma": dict(n_kv_heads=1, head_dim=16),  # RoPE, one kv head, head_dim free
    "gpt2": {},  # learned positions
    "neox": dict(rotary_pct=0.25),  # partial rotary, parallel residual
}


def model_for(flavour, max_seq_len=32):
    torch.manual_seed(0)
    cfg = ModelConfig(flavour=flavour, n_layers=2, n_heads=4, d_model=32, vocab_size=61, max_seq_len=max_seq_len,
                      **FLAVOURS[flavour])
    return build_model(cfg).eval()


@pytest.mark.parametrize("flavour", list(FLAVOURS))
@torch.no_grad()
def test_prefill_then_one_token_at_a_time_equals_recomputing_everything(flavour):
    model = model_for(flavour)
    ids = torch.randint(61, (1, 20), generator=torch.Generator().manual_seed(1))
    full = model(ids)
    cache = model.new_cache()
    # a 7-token prefill, a 3-token chunk onto a filled cache (the shifted causal mask), then single tokens
    pieces = [model(ids[:, :7], cache=cache), model(ids[:, 7:10], cache=cache)]
    pieces += [model(ids[:, t:t + 1], cache=cache) for t in range(10, 20)]
    cached = torch.cat(pieces, dim=1)
    assert cache.length == 20
    assert (cached - full).abs().max().item() <= 1e-5


@torch.no_grad()
def test_the_cache_ends_at_max_seq_len():
    model = model_for("llama", max_seq_len=8)
    cache = model.new_cache()
    model(torch.zeros(1, 8, dtype=torch.long), cache=cache)
    with pytest.raises(UserError, match="max_seq_len"):
        model(torch.zeros(1, 1, dtype=torch.long), cache=cache)
