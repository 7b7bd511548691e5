"""Sampling from a decoder: greedy is argmax, seeds reproduce, the window is cropped, EOS stops."""

import pytest
import torch
from torch import nn

from tinylm.data.tokenizer import load_tokenizer, special_ids
from tinylm.errors import UserError
from tinylm.eval.generation import generate
from tinylm.models import build_model, resolve_model_config

PROMPT = "Alice was beginning to get very tired"


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer("gpt2")  # shipped with the package: no download, and it has an EOS


@pytest.fixture(scope="module")
def eos(tokenizer):
    return special_ids(tokenizer)["eos"]


def tiny_decoder(vocab_size, max_seq_len=64, flavour="llama"):
    torch.manual_seed(0)
    model = build_model(resolve_model_config("L2-4-32x2", flavour=flavour, vocab_size=vocab_size,
                                             max_seq_len=max_seq_len))
    with torch.no_grad():  # sharper than the small init, so the argmax is not a near-tie
        for p in model.parameters():
            p.mul_(8.0)
    return model


def greedy_reference(model, ids, n, eos, window):
    """Argmax decoding written out plainly, to check the sampler against."""
    ids, new = list(ids), []
    with torch.no_grad():
        for _ in range(n):
            token = int(model(torch.tensor([ids[-window:]]))[0, -1].argmax())
            ids.append(token)
            new.append(token)
            if token == eos:
                break
    return new


@pytest.mark.parametrize("settings", [{"top_k": 1, "temperature": 1.0}, {"temperature": 0.0}])
def test_greedy_settings_equal_argmax_decoding(tokenizer, eos, settings):
    model = tiny_decoder(tokenizer.get_vocab_size(), max_seq_len=64).eval()
    prompt_ids = [eos] + tokenizer.encode(PROMPT).ids
    expected = greedy_reference(model, prompt_ids, 12, eos, window=64)
    [out] = generate(model, tokenizer, [PROMPT], max_new_tokens=12, seed=5, **settings)
    assert out.ids == expected
    assert out.text == tokenizer.decode(expected, skip_special_tokens=True)


def test_same_seed_same_text_other_seed_other_text(tokenizer):
    model = tiny_decoder(tokenizer.get_vocab_size())
    runs = [generate(model, tokenizer, [PROMPT, "Tom said"], max_new_tokens=10, temperature=1.0, seed=s)
            for s in (0, 0, 1)]
    first, again, other = ([c.ids for c in r] for r in runs)
    assert first == again
    assert first[0] != other[0] and first[1] != other[1]


class Uniform(nn.Module):
    """A decoder that ignores its input: every token equally likely, whatever the prompt."""

    def __init__(self, config):
        super().__init__()
        self.config, self.anchor = config, nn.Parameter(torch.zeros(1))

    def forward(self, input_ids):
        return torch.zeros(*input_ids.shape, self.config.vocab_size)


def test_two_prompts_do_not_share_random_draws(tokenizer):
    model = Uniform(tiny_decoder(tokenizer.get_vocab_size()).config)
    a, b = generate(model, tokenizer, [PROMPT, "Tom said"], max_new_tokens=10, temperature=1.0, seed=0)
    assert a.ids != b.ids


def test_a_prompt_continues_the_same_whatever_else_is_asked(tokenizer):
    model = tiny_decoder(tokenizer.get_vocab_size())
    alone = generate(model, tokenizer, ["Tom said"], max_new_tokens=8, seed=3)
    after = generate(model, tokenizer, [PROMPT, "Tom said"], max_new_tokens=8, seed=3)
    assert alone[0].ids == after[1].ids


def test_top_k_draws_only_among_the_k_likeliest(tokenizer, eos):
    model = tiny_decoder(tokenizer.get_vocab_size()).eval()
    [out] = generate(model, tokenizer, [PROMPT], max_new_tokens=15, temperature=1.5, top_k=3, seed=0)
    ids = [eos] + tokenizer.encode(PROMPT).ids
    with torch.no_grad():
        for token in out.ids:
            top = model(torch.tensor([ids]))[0, -1].topk(3).indices.tolist()
            assert token in top
            ids.append(token)
    unrestricted = generate(model, tokenizer, [PROMPT], max_new_tokens=15, temperature=1.5, seed=0)[0].ids
    assert unrestricted != out.ids  # the restriction changed something, so the check above had teeth


@pytest.mark.parametrize("flavour", ["llama", "gpt2"])  # rotary and learned positions
def test_a_prompt_longer_than_the_window_is_cropped_on_the_left(tokenizer, eos, flavour):
    window = 16
    model = tiny_decoder(tokenizer.get_vocab_size(), max_seq_len=window, flavour=flavour).eval()
    long_prompt = " ".join([PROMPT] * 6)
    prompt_ids = [eos] + tokenizer.encode(long_prompt).ids
    assert len(prompt_ids) > 2 * window
    [out] = generate(model, tokenizer, [long_prompt], max_new_tokens=10, temperature=0)
    assert out.ids == greedy_reference(model, prompt_ids, 10, eos, window=window)
    assert len(out.ids) == 10


def test_a_shorter_window_is_kept_and_a_longer_one_capped(tokenizer, eos):
    model = tiny_decoder(tokenizer.get_vocab_size(), max_seq_len=16).eval()
    prompt_ids = [eos] + tokenizer.encode(PROMPT).ids
    [short] = generate(model, tokenizer, [PROMPT], max_new_tokens=6, temperature=0, window=4)
    assert short.ids == greedy_reference(model, prompt_ids, 6, eos, window=4)
    assert short.ids != greedy_reference(model, prompt_ids, 6, eos, window=16)  # the window mattered
    [capped] = generate(model, tokenizer, [" ".join([PROMPT] * 4)], max_new_tokens=3, temperature=0, window=1000)
    assert len(capped.ids) == 3
    with pytest.raises(UserError, match="window"):
        generate(model, tokenizer, [PROMPT], window=0)


class EndsAfter(nn.Module):
    """A decoder that writes EOS once the context has `length` tokens, and notes how it was called."""

    def __init__(self, inner, eos, length):
        super().__init__()
        self.inner, self.config, self.eos, self.length = inner, inner.config, eos, length
        self.calls = []

    def forward(self, input_ids):
        self.calls.append((torch.is_grad_enabled(), self.training))
        logits = self.inner(input_ids)
        if input_ids.shape[1] >= self.length:
            logits[..., self.eos] = 1e4
        return logits


def test_stops_at_the_end_of_text_token_in_eval_mode_without_gradients(tokenizer, eos):
    prompt_ids = [eos] + tokenizer.encode(PROMPT).ids
    model = EndsAfter(tiny_decoder(tokenizer.get_vocab_size()), eos, length=len(prompt_ids) + 3)
    model.train()
    [out] = generate(model, tokenizer, [PROMPT], max_new_tokens=20, seed=0)
    assert out.ended and len(out.ids) == 4 and out.ids[-1] == eos
    assert "<|endoftext|>" not in out.text
    assert model.calls == [(False, False)] * 4
    assert model.training  # handed back as it came


def test_runs_out_of_tokens_without_ending(tokenizer):
    [out] = generate(tiny_decoder(tokenizer.get_vocab_size()), tokenizer, [PROMPT], max_new_tokens=3, seed=0)
    assert not out.ended and len(out.ids) == 3


def test_an_encoder_is_refused(tokenizer):
    encoder = build_model(resolve_model_config("L1-2-32x2", flavour="bert", vocab_size=tokenizer.get_vocab_size()))
    with pytest.raises(UserError, match="encoder"):
        generate(encoder, tokenizer, [PROMPT])


@pytest.mark.parametrize("settings, match", [({"max_new_tokens": -1}, "new tokens"),
                                             ({"temperature": -0.5}, "temperature"),
                                             ({"temperature": float("nan")}, "temperature"),
                                             ({"top_k": 0}, "top-k")])
def test_bad_settings_are_refused(tokenizer, settings, match):
    with pytest.raises(UserError, match=match):
        generate(tiny_decoder(tokenizer.get_vocab_size()), tokenizer, [PROMPT], **settings)
