"""The batched scorer gives exactly what a naive one-sentence-at-a-time scorer gives."""

import numpy as np
import pytest
import torch

from tinylm.eval.scoring import EnsembleLogits, ModelLogits, Scorer, causal_rows, pll_rows
from tinylm.models import ModelConfig, build_model

V = 101


def _model(flavour="llama", seed=0, **fields):
    cfg = ModelConfig(flavour=flavour, n_layers=2, n_heads=4, d_model=32, vocab_size=V, max_seq_len=24, **fields)
    torch.manual_seed(seed)
    return build_model(cfg).eval()


def _texts(n=37, seed=0, lo=1, hi=14):
    g = np.random.default_rng(seed)
    return [list(map(int, g.integers(3, V, size=int(g.integers(lo, hi))))) for _ in range(n)]


@torch.no_grad()
def _naive_causal(model, ctx, cont, max_len):
    whole = (ctx + cont)[-(max_len + 1):]
    x = torch.tensor([whole[:-1]])
    logp = torch.log_softmax(model(x)[0].double(), -1)
    n = min(len(cont), len(whole) - 1)
    targets = whole[-n:]
    return float(sum(logp[len(whole) - 1 - n + j, t] for j, t in enumerate(targets)))


def test_causal_scores_equal_naive_and_do_not_depend_on_batching():
    model = _model()
    conts = _texts()
    ctxs = [[1]] * len(conts)
    naive = np.array([_naive_causal(model, c, t, model.config.max_seq_len) for c, t in zip(ctxs, conts)])
    for batch_tokens in (16, 100, 4096):
        got, truncated = Scorer.for_model(model, batch_tokens=batch_tokens).causal(ctxs, conts)
        np.testing.assert_allclose(got, naive, atol=2e-5, rtol=0)
        assert truncated == 0


def test_long_requests_are_truncated_on_the_left_as_lm_eval():
    model = _model()
    ctxs = _texts(n=9, seed=1, lo=10, hi=30)
    conts = _texts(n=9, seed=2, lo=1, hi=8)
    rows = causal_rows(ctxs, conts, max_len=24)
    assert rows.lengths.max() <= 24
    assert rows.truncated == sum(len(c) + len(t) > 25 for c, t in zip(ctxs, conts))
    got, _ = Scorer.for_model(model).causal(ctxs, conts)
    naive = [_naive_causal(model, c, t, 24) for c, t in zip(ctxs, conts)]
    np.testing.assert_allclose(got, naive, atol=2e-5, rtol=0)


@torch.no_grad()
def test_encoder_pll_equals_naive_and_head_at_positions_equals_forward():
    model = _model("bert", pad_token_id=0)
    texts = _texts(n=11, lo=1, hi=9)
    cls, sep, mask = 1, 2, 3
    got, _ = Scorer.for_model(model, batch_tokens=64).pll([[]] * len(texts), texts, cls_id=cls, sep_id=sep, mask_id=mask)
    naive = []
    for t in texts:
        total = 0.0
        for j in range(len(t)):
            row = [cls, *t, sep]
            row[1 + j] = mask
            logp = torch.log_softmax(model(torch.tensor([row]))[0, 1 + j].double(), -1)
            total += float(logp[t[j]])
        naive.append(total)
    np.testing.assert_allclose(got, naive, atol=2e-5, rtol=0)

    rows, owner = pll_rows([[]] * 3, texts[:3], cls_id=cls, sep_id=sep, mask_id=mask, max_len=24)
    assert len(rows) == sum(len(t) for t in texts[:3]) and owner.tolist()[:len(texts[0])] == [0] * len(texts[0])
    x = torch.tensor([[cls, 5, 6, mask, 7, sep, 0], [cls, mask, 9, sep, 0, 0, 0]])
    attn = (torch.arange(7)[None] < torch.tensor([[6], [4]])).long()
    select = x == mask
    fn = ModelLogits(model)
    torch.testing.assert_close(fn.at(x, attn, select), model(x, attention_mask=attn)[select], atol=1e-5, rtol=1e-5)


@torch.no_grad()
def test_ensemble_averages_logits_before_the_softmax():
    a, b = _model(seed=0), _model(seed=1)
    conts = _texts(n=5)
    ctxs = [[1]] * 5
    got, _ = Scorer.for_models([a, b]).causal(ctxs, conts)
    for c, t, g in zip(ctxs, conts, got):
        x = torch.tensor([(c + t)[:-1]])
        logp = torch.log_softmax(((a(x) + b(x)) / 2)[0].double(), -1)
        assert g == pytest.approx(float(sum(logp[j, tok] for j, tok in enumerate(t))), abs=2e-5)
    same, _ = Scorer.for_logits(EnsembleLogits([ModelLogits(a)])).causal(ctxs, conts)
    np.testing.assert_allclose(same, Scorer.for_model(a).causal(ctxs, conts)[0], atol=1e-6)


def test_bf16_is_close_and_reported_progress_counts_scored_tokens():
    model = _model()
    conts = _texts()
    seen = []

    class Progress:
        def begin(self, desc, total):
            seen.append(("begin", total))

        def advance(self, n):
            seen.append(n)

    scorer = Scorer.for_model(model, precision="bf16", batch_tokens=64, progress=Progress())
    scorer.begin("x", conts)
    got, _ = scorer.causal([[1]] * len(conts), conts)
    ref, _ = Scorer.for_model(model).causal([[1]] * len(conts), conts)
    np.testing.assert_allclose(got, ref, atol=0.05 * np.abs(ref).max())
    assert seen[0] == ("begin", sum(map(len, conts))) and sum(seen[1:]) == sum(map(len, conts))
    # bf16 linear weights cast once (Scorer.for_model) give what per-batch autocast gives
    autocast_only, _ = Scorer.for_logits(ModelLogits(model), precision="bf16").causal([[1]] * len(conts), conts)
    np.testing.assert_allclose(Scorer.for_model(model, precision="bf16").causal([[1]] * len(conts), conts)[0],
                               autocast_only, atol=1e-6, rtol=0)
    assert next(model.parameters()).dtype == torch.float32  # the caller's model is untouched


@torch.no_grad()
def _greedy_continuation(model, ctx, n):
    seq = list(ctx)
    for _ in range(n):
        seq.append(int(model(torch.tensor([seq]))[0, -1].argmax()))
    return seq[len(ctx):]


@pytest.mark.parametrize("context_len", [1, 14])  # sentence-like rows, and long contexts (the gather path)
def test_causal_greedy_is_true_exactly_when_every_token_is_the_argmax(context_len):
    """lm-eval's is_greedy: what `tinylm eval --lm-eval` reports for tasks such as LAMBADA."""
    model = _model()
    ctxs = _texts(n=6, seed=3, lo=context_len, hi=context_len + 1)
    greedy = [_greedy_continuation(model, c, 4) for c in ctxs]
    wrong_last = [g[:-1] + [(g[-1] + 1) % V] for g in greedy]
    wrong_first = [[(g[0] + 1) % V] + g[1:] for g in greedy]
    sums, is_greedy = Scorer.for_model(model).causal_greedy(ctxs * 3, greedy + wrong_last + wrong_first)
    assert is_greedy.tolist() == [True] * 6 + [False] * 12
    np.testing.assert_allclose(sums, Scorer.for_model(model).causal(ctxs * 3, greedy + wrong_last + wrong_first)[0])
