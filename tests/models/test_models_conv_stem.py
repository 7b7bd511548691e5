"""The committee paper's convolutional stem: notation, presets, padding, counts, checkpoints, export."""

import pytest
import torch

from tinylm.errors import UserError
from tinylm.models import build_model, count_parameters, resolve_model_config
from tinylm.models.conv_stem import parse_conv_stem
from tinylm.models.presets import TABLE8_COMMITTEE


def _tiny(stem="2x8k3x3", **kw):
    torch.manual_seed(0)
    cfg = resolve_model_config(f"L1-4-32x4+conv{stem}", flavour="bert", vocab_size=60, max_seq_len=24,
                               pad_token_id=0, n_classes=3, **kw)
    return build_model(cfg)


def test_notation_and_presets():
    assert parse_conv_stem("2x64k3x3").kernel == (3, 3)
    assert parse_conv_stem("2x64k16x3").kernel == (16, 3)  # 16 tokens x 3 embedding channels
    assert parse_conv_stem("1x64k3").kernel == (1, 3)  # 1-D: along the embedding only
    cfg = resolve_model_config("bert-1+conv2x64k3x3")
    assert cfg.conv_stem == "2x64k3x3" and cfg.n_layers == 1 and cfg.d_model == 768
    assert resolve_model_config("bert-1-conv2x64k3x3") == cfg
    heads = [resolve_model_config(n).n_heads for n in TABLE8_COMMITTEE]
    assert heads == [8, 12, 24, 12, 12]
    for bad in ("bert-1+conv2x64", "bert-1+lora8", "L2-2-32x2+convAxB"):
        with pytest.raises(UserError, match="stem|suffix"):
            resolve_model_config(bad, flavour="bert")
    with pytest.raises(UserError, match="only on the encoder"):
        resolve_model_config("L2-2-32x2+conv1x4k3", flavour="llama")


@pytest.mark.parametrize("stem", ["2x8k3x3", "2x8k16x3", "1x4k3", "3x4k3x3"])
def test_closed_form_count_equals_modules(stem):
    model = _tiny(stem)
    assert count_parameters(model)["total"] == sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("training", [False, True])
@pytest.mark.parametrize("stem", ["2x8k3x3", "2x8k16x3", "1x4k3"])
def test_stem_respects_padding(stem, training):
    """The same rows padded to their longest (10) and to 24 with garbage in the padding: identical
    hidden states on the real tokens, in eval mode and in train mode (masked BatchNorm statistics)."""
    model = _tiny(stem, dropout=0.0).train(training)
    g = torch.Generator().manual_seed(1)
    lengths = [10, 6]
    short = torch.zeros(2, 10, dtype=torch.long)
    long = torch.randint(1, 60, (2, 24), generator=g)  # garbage where the mask says padding
    for i, n in enumerate(lengths):
        row = torch.randint(1, 60, (n,), generator=g)
        short[i, :n] = row
        long[i, :n] = row
    mask_short = (torch.arange(10)[None] < torch.tensor(lengths)[:, None]).long()
    mask_long = (torch.arange(24)[None] < torch.tensor(lengths)[:, None]).long()
    a = model.encode(short, mask_short)
    b = model.encode(long, mask_long)
    for i, n in enumerate(lengths):
        torch.testing.assert_close(a[i, :n], b[i, :n], rtol=1e-5, atol=1e-5)
    if not training:  # and one row alone (no padding at all) equals its padded self
        alone = model.encode(short[1:, :6], mask_short[1:, :6])
        torch.testing.assert_close(alone[0], b[1, :6], rtol=1e-5, atol=1e-5)


def test_stem_changes_the_output_and_trains():
    model = _tiny("2x8k3x3", dropout=0.0)
    x = torch.randint(1, 60, (4, 12))
    logits = model.classify(x, torch.ones_like(x))
    logits.sum().backward()
    assert model.conv_stem.convs[0].weight.grad.abs().sum() > 0
    without = build_model(model.config.replace(conv_stem=None))
    assert without.conv_stem is None


def test_checkpoint_round_trip_keeps_the_stem(tmp_path):
    from tinylm.models import ModelConfig
    model = _tiny("2x8k3x3").eval()
    rebuilt = build_model(ModelConfig.from_dict(model.config.to_dict()))
    rebuilt.load_state_dict(model.state_dict())
    x = torch.randint(1, 60, (2, 8))
    torch.testing.assert_close(rebuilt.eval().classify(x), model.classify(x))


def test_hf_export_refuses_a_stem():
    pytest.importorskip("transformers")
    from tinylm.models.hf import to_hf
    with pytest.raises(UserError, match="convolutional stem"):
        to_hf(_tiny("2x8k3x3"))
