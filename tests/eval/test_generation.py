"""Sampling from a decoder: greedy is argmax, seeds reproduce, the window is cropped, EOS stops, top-p keeps the
nucleus, samples have their own seeds, the cache is read one token at a time, text streams whole characters."""

import pytest
import torch
from torch import nn

from tinylm.data.tokenizer import load_tokenizer, special_ids
from tinylm.errors import UserError
from tinylm.eval.generation import generate, nucleus
from tinylm.eval.text_stream import TextStream
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


def _each_drawn_with_its_logits(model, tokenizer, eos, out):
    """Each token `generate` drew for PROMPT, with the logits a full forward pass gives at its place."""
    ids = [eos] + tokenizer.encode(PROMPT).ids
    with torch.no_grad():
        for token in out.ids:
            yield token, model(torch.tensor([ids]))[0, -1]
            ids.append(token)


def test_top_k_draws_only_among_the_k_likeliest(tokenizer, eos):
    model = tiny_decoder(tokenizer.get_vocab_size()).eval()
    [out] = generate(model, tokenizer, [PROMPT], max_new_tokens=15, temperature=1.5, top_k=3, seed=0)
    for token, logits in _each_drawn_with_its_logits(model, tokenizer, eos, out):
        assert token in logits.topk(3).indices.tolist()
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
                                             ({"temperature": float("inf")}, "temperature"),
                                             ({"top_k": 0}, "top-k"),
                                             ({"top_p": 0.0}, "top-p"),
                                             ({"top_p": 1.01}, "top-p"),
                                             ({"top_p": float("nan")}, "top-p"),
                                             ({"num_samples": 0}, "samples"),
                                             ({"num_samples": 10**9}, "samples: give from 1 to 10,000"),
                                             ({"max_new_tokens": 10**9}, "new tokens: give from 0")])
def test_bad_settings_are_refused(tokenizer, settings, match):
    with pytest.raises(UserError, match=match):
        generate(tiny_decoder(tokenizer.get_vocab_size()), tokenizer, [PROMPT], **settings)


def test_the_nucleus_is_the_smallest_set_of_likeliest_tokens_reaching_p():
    probs = torch.tensor([0.15, 0.5, 0.05, 0.3])

    def kept(p):
        return nucleus(probs, p).nonzero().flatten().tolist()
    assert kept(0.5) == [1] and kept(0.2) == [1]  # the likeliest alone reaches p
    assert kept(0.8) == [1, 3] and kept(0.81) == [0, 1, 3] and kept(1.0) == [0, 1, 2, 3]
    assert torch.equal(nucleus(probs, 0.8)[[1, 3]], probs[[1, 3]])  # the kept keep their probabilities


def test_top_p_draws_only_within_the_nucleus(tokenizer, eos):
    model = tiny_decoder(tokenizer.get_vocab_size()).eval()
    [out] = generate(model, tokenizer, [PROMPT], max_new_tokens=15, temperature=2.0, top_p=0.5, seed=0)
    for token, logits in _each_drawn_with_its_logits(model, tokenizer, eos, out):
        assert nucleus(torch.softmax(logits / 2.0, -1), 0.5)[token] > 0
    unrestricted = generate(model, tokenizer, [PROMPT], max_new_tokens=15, temperature=2.0, seed=0)[0].ids
    assert unrestricted != out.ids  # the nucleus changed something
    assert generate(model, tokenizer, [PROMPT], max_new_tokens=15, temperature=2.0, top_p=1.0, seed=0)[0].ids \
        == unrestricted  # p = 1 keeps every token: the same draws
    greedy = generate(model, tokenizer, [PROMPT], max_new_tokens=15, temperature=0)[0].ids
    assert generate(model, tokenizer, [PROMPT], max_new_tokens=15, top_p=1e-9, seed=0)[0].ids == greedy


def test_each_sample_has_its_own_reproducible_seed(tokenizer):
    model = tiny_decoder(tokenizer.get_vocab_size())
    three = generate(model, tokenizer, [PROMPT, "Tom said"], max_new_tokens=8, temperature=1.0, seed=4, num_samples=3)
    assert [(c.prompt, c.sample) for c in three] == [(p, s) for p in (PROMPT, "Tom said") for s in range(3)]
    assert len({tuple(c.ids) for c in three}) == 6  # no two continuations share their draws
    one = generate(model, tokenizer, [PROMPT, "Tom said"], max_new_tokens=8, temperature=1.0, seed=4)
    assert [c.ids for c in one] == [three[0].ids, three[3].ids]  # sample 0 is the single sample
    two = generate(model, tokenizer, [PROMPT], max_new_tokens=8, temperature=1.0, seed=4, num_samples=2)
    assert [c.ids for c in two] == [three[0].ids, three[1].ids]  # a sample does not depend on how many were asked
    other_seed = generate(model, tokenizer, [PROMPT], max_new_tokens=8, temperature=1.0, seed=5, num_samples=3)
    assert not {tuple(c.ids) for c in other_seed} & {tuple(c.ids) for c in three[:3]}


def test_the_cache_reads_the_prompt_once_then_one_token_a_step(tokenizer, eos):
    model = tiny_decoder(tokenizer.get_vocab_size()).eval()
    widths = []
    model.register_forward_pre_hook(lambda module, args: widths.append(args[0].shape[1]))
    [out] = generate(model, tokenizer, [PROMPT], max_new_tokens=6, temperature=0)
    assert widths == [1 + len(tokenizer.encode(PROMPT).ids)] + [1] * 5
    assert out.ids == greedy_reference(model, [eos] + tokenizer.encode(PROMPT).ids, 6, eos, window=64)


@pytest.mark.parametrize("flavour", ["llama", "gpt2"])
def test_past_the_window_the_cache_gives_way_to_recomputing_the_latest_window(tokenizer, eos, flavour):
    model = tiny_decoder(tokenizer.get_vocab_size(), max_seq_len=16, flavour=flavour).eval()
    prompt_ids = [eos] + tokenizer.encode(PROMPT).ids
    assert len(prompt_ids) < 12
    [out] = generate(model, tokenizer, [PROMPT], max_new_tokens=12, temperature=0, window=12)
    assert out.ids == greedy_reference(model, prompt_ids, 12, eos, window=12)


class Recorder:
    def __init__(self):
        self.events = []

    def begin(self, prompt, sample):
        self.events.append(("begin", prompt, sample))

    def write(self, piece):
        self.events.append(("write", piece))

    def end(self, continuation):
        self.events.append(("end", continuation))


def test_the_sink_gets_each_continuation_piece_by_piece(tokenizer):
    model = tiny_decoder(tokenizer.get_vocab_size())
    sink = Recorder()
    outs = generate(model, tokenizer, [PROMPT, "Tom said"], max_new_tokens=7, seed=1, num_samples=2, sink=sink)
    begins = [e[1:] for e in sink.events if e[0] == "begin"]
    assert begins == [(PROMPT, 0), (PROMPT, 1), ("Tom said", 0), ("Tom said", 1)]
    assert [e[1] for e in sink.events if e[0] == "end"] == outs
    texts, current = [], None
    for event in sink.events:
        if event[0] == "begin":
            current = []
        elif event[0] == "write":
            current.append(event[1])
        else:
            texts.append(current)
    assert ["".join(pieces) for pieces in texts] == [o.text for o in outs]
    assert all(len([p for p in pieces if p]) >= 2 for pieces in texts)  # streamed, not written at the end


def test_streamed_text_never_splits_a_character(tokenizer):
    text = " café 🙂 naïve 日本語 ok"
    ids = tokenizer.encode(text).ids
    stream = TextStream(tokenizer)
    pieces = [stream.push(i) for i in ids] + [stream.finish()]
    assert "".join(pieces) == tokenizer.decode(ids) == text
    assert not any("\ufffd" in p for p in pieces)
    assert pieces.count("") >= 3  # the emoji and the CJK characters span several byte tokens each
