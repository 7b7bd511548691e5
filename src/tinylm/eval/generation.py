"""Sample text from a trained decoder: the quickest way to see what a small model learned.

Each continuation is sampled on its own, from its own ``torch.Generator`` seeded by ``seed``, the
prompt's text and the sample's number, so a prompt's continuation does not depend on which other
prompts (or how many samples) were asked for (the demo's sample for "Alice was" is the one
``tinylm generate RUN --prompt "Alice was"`` prints), and no two continuations share random draws.
Draws are made on the CPU from the last position's logits, so the random stream is the same whatever
device ran the model; the same torch on the same kind of CPU gives the same text.

Settings, in the order they apply (as in transformers): ``temperature`` divides the logits (0 is
greedy), ``top_k`` keeps the k likeliest tokens, ``top_p`` keeps the smallest set of likeliest
tokens whose probability reaches p (nucleus sampling, Holtzman et al. 2020).

The prompt follows the document separator (EOS, when the tokenizer has one): the token stores put it
after every document, so the model reads the prompt as the start of a paragraph, as in training.
A model that offers a key/value cache (``model.new_cache()``: tinylm's decoder, a transformers causal
LM through ``hf_causal``) reads the prompt once, then one token per step. Once the context is longer
than the window, each new token recomputes the latest ``window`` tokens without the cache (as every
token did before the cache existed), so the text is the same as with a model that has no cache:
the window slides, and positions restart at 0 in each recomputed window.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass

import torch

from tinylm.errors import UserError
from tinylm.eval.text_stream import TextStream


@dataclass
class Continuation:
    prompt: str
    text: str  # the new text only, special tokens left out
    ids: list[int]  # the new token ids, the end-of-text token included when it was drawn
    ended: bool  # True when the model wrote its end-of-text token, False when max_new_tokens ran out
    sample: int = 0  # which of the prompt's num_samples continuations this is


class Sink:
    """Where streamed text goes: ``begin`` each continuation, ``write`` each new piece, ``end`` it."""

    def begin(self, prompt: str, sample: int) -> None: ...

    def write(self, piece: str) -> None: ...

    def end(self, continuation: Continuation) -> None: ...


# Beyond these a request is a slip of the keyboard, not a use: a million tokens take hours on a CPU, and
# the continuations are all held for the caller.
MAX_NEW_TOKENS = 100_000
MAX_SAMPLES = 10_000


def check_sampling(max_new_tokens: int, temperature: float, top_k: int | None, top_p: float | None = None,
                   num_samples: int = 1) -> None:
    """Sampling settings a user can get wrong, refused with the fix (the one place that checks them)."""
    if not 0 <= max_new_tokens <= MAX_NEW_TOKENS:
        raise UserError(f"{max_new_tokens} new tokens: give from 0 to {MAX_NEW_TOKENS:,} (e.g. 40)")
    if not temperature >= 0 or math.isinf(temperature):  # `not >=` also refuses NaN
        raise UserError(f"temperature {temperature}: give 0 (always the likeliest token) or more (1 samples "
                        "the model's own distribution)")
    if top_k is not None and top_k < 1:
        raise UserError(f"top-k {top_k}: give a number of tokens, 1 or more (1 is greedy)")
    if top_p is not None and not 0 < top_p <= 1:
        raise UserError(f"top-p {top_p}: give a probability in (0, 1], e.g. 0.9 (1 keeps every token)")
    if not 1 <= num_samples <= MAX_SAMPLES:
        raise UserError(f"{num_samples} samples: give from 1 to {MAX_SAMPLES:,} continuations per prompt")


def generate(model, tokenizer, prompts: list[str], *, max_new_tokens: int = 40, temperature: float = 1.0,
             top_k: int | None = None, top_p: float | None = None, seed: int = 0, num_samples: int = 1,
             special_ids: dict | None = None, window: int | None = None, sink: Sink | None = None,
             ) -> list[Continuation]:
    """``num_samples`` continuations per prompt (prompt by prompt): up to ``max_new_tokens`` tokens each,
    stopping at end-of-text.

    ``temperature`` 0 (or ``top_k`` 1) picks the likeliest token every time (``top_p`` then plays no
    part); otherwise see the module docstring. Tokens tied with the k-th stay with ``top_k``.
    ``special_ids`` (roles of special tokens, as a checkpoint's metadata holds them) default to the
    tokenizer's own. The model sees the latest ``window`` tokens at most (default and cap: its
    ``max_seq_len``; a run's training window length is a better choice, since the model never saw
    positions beyond it). ``sink`` receives the new text as it is drawn. The model goes back to
    training mode afterwards if it was in it.
    """
    from tinylm.data.tokenizer import special_ids as tokenizer_special_ids

    check_sampling(max_new_tokens, temperature, top_k, top_p, num_samples)
    config = model.config
    if config.kind != "decoder":
        raise UserError(f"a {config.flavour} model is an encoder: it fills in masked tokens and cannot continue a "
                        "prompt; generate from a decoder (llama, gemma, gpt2, neox), or fill in a mask with "
                        "--fill \"... [MASK] ...\"")
    specials = tokenizer_special_ids(tokenizer) if special_ids is None else special_ids
    eos = specials.get("eos")
    if window is not None and window < 1:
        raise UserError(f"a window of {window} tokens: give 1 or more")
    window = min(window or config.max_seq_len, config.max_seq_len)
    settings = (max_new_tokens, temperature, top_k, top_p)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            return [_continue(model, tokenizer, prompt, sample, settings, seed, eos, window, sink or Sink())
                    for prompt in prompts for sample in range(num_samples)]
    finally:
        model.train(was_training)


def _continue(model, tokenizer, prompt, sample, settings, seed, eos, window, sink: Sink) -> Continuation:
    max_new_tokens, temperature, top_k, top_p = settings
    device = next(model.parameters()).device
    ids = ([eos] if eos is not None else []) + tokenizer.encode(prompt, add_special_tokens=False).ids
    if not ids:
        raise UserError("the prompt is empty and the tokenizer has no end-of-text token to start from: give a prompt")
    generator = torch.Generator(device="cpu").manual_seed(sample_seed(seed, prompt, sample))
    cache = model.new_cache() if hasattr(model, "new_cache") else None
    stream = TextStream(tokenizer)
    sink.begin(prompt, sample)
    new: list[int] = []
    for _ in range(max_new_tokens):
        if cache is not None and len(ids) <= window:  # the cache holds ids[:cache.length]: read the rest
            logits = model(torch.tensor([ids[cache.length:]], device=device), cache=cache)[0, -1]
        else:  # no cache, or past the window: the model sees the latest `window` tokens, recomputed
            logits = model(torch.tensor([ids[-window:]], device=device))[0, -1]
        token = pick(logits.float().cpu(), temperature, top_k, top_p, generator)
        ids.append(token)
        new.append(token)
        sink.write(stream.push(token))
        if token == eos:
            break
    sink.write(stream.finish())
    ended = bool(new) and new[-1] == eos
    out = Continuation(prompt, tokenizer.decode(new, skip_special_tokens=True), new, ended, sample)
    sink.end(out)
    return out


def sample_seed(seed: int, prompt: str, sample: int = 0) -> int:
    """The seed of a prompt's ``sample``-th continuation; sample 0 keeps the seed one sample always had."""
    mixed = int(seed) * 1_000_003 + zlib.crc32(prompt.encode("utf-8"))
    if sample:
        mixed = mixed * 6_364_136_223_846_793_005 + sample * 1_442_695_040_888_963_407  # Knuth's LCG constants
    return mixed % (2**63 - 1)


def pick(logits: torch.Tensor, temperature: float, top_k: int | None, top_p: float | None,
         generator: torch.Generator) -> int:
    """One token id from a position's logits (float32, CPU)."""
    if temperature == 0 or top_k == 1:
        return int(torch.argmax(logits))
    if top_k is not None and top_k < logits.numel():
        kth = torch.topk(logits, top_k).values[-1]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = torch.softmax(logits / temperature, dim=-1)
    if top_p is not None and top_p < 1:
        probs = nucleus(probs, top_p)
    return int(torch.multinomial(probs, 1, generator=generator))


def nucleus(probs: torch.Tensor, top_p: float) -> torch.Tensor:
    """``probs`` with all but the smallest set of likeliest tokens reaching ``top_p`` zeroed (the likeliest
    token always stays); multinomial renormalises."""
    sorted_probs, order = torch.sort(probs, descending=True)
    before = torch.cumsum(sorted_probs, dim=-1) - sorted_probs  # the mass of the likelier tokens
    drop = before >= top_p  # the set already reached p without this token
    return probs.scatter(-1, order, sorted_probs.masked_fill(drop, 0.0))
