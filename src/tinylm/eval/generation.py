"""Sample text from a trained decoder: the quickest way to see what a small model learned.

Each prompt is sampled on its own, from its own ``torch.Generator`` seeded by ``seed`` and the
prompt's text, so a prompt's continuation does not depend on which other prompts were asked for
(the demo's sample for "Alice was" is the one ``tinylm generate RUN --prompt "Alice was"`` prints),
and two prompts do not share random draws. Draws are made on the CPU from the last position's
logits, so the random stream is the same whatever device ran the model; the same torch on the same
kind of CPU gives the same text.

The prompt follows the document separator (EOS, when the tokenizer has one): the token stores put it
after every document, so the model reads the prompt as the start of a paragraph, as in training.
Each new token recomputes the whole window (the decoder keeps no KV cache): for the demo's model on
a CPU a few tens of milliseconds a token at short contexts, ten times that with a 512-token window.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import torch

from tinylm.errors import UserError


@dataclass
class Continuation:
    prompt: str
    text: str  # the new text only, special tokens left out
    ids: list[int]  # the new token ids, the end-of-text token included when it was drawn
    ended: bool  # True when the model wrote its end-of-text token, False when max_new_tokens ran out


def check_sampling(max_new_tokens: int, temperature: float, top_k: int | None) -> None:
    """Sampling settings a user can get wrong, refused with the fix."""
    if max_new_tokens < 0:
        raise UserError(f"{max_new_tokens} new tokens: give zero or more (e.g. 40)")
    if not temperature >= 0:  # also refuses NaN
        raise UserError(f"temperature {temperature}: give 0 (always the likeliest token) or more (1 samples "
                        "the model's own distribution)")
    if top_k is not None and top_k < 1:
        raise UserError(f"top-k {top_k}: give a number of tokens, 1 or more (1 is greedy)")


def generate(model, tokenizer, prompts: list[str], *, max_new_tokens: int = 40, temperature: float = 1.0,
             top_k: int | None = None, seed: int = 0, special_ids: dict | None = None,
             window: int | None = None) -> list[Continuation]:
    """One continuation per prompt: up to ``max_new_tokens`` tokens, stopping at end-of-text.

    ``temperature`` 0 (or ``top_k`` 1) picks the likeliest token every time; otherwise the logits are
    divided by the temperature and, with ``top_k``, all but the k likeliest tokens are dropped (tokens
tied with the k-th stay).
    ``special_ids`` (roles of special tokens, as a checkpoint's metadata holds them) default to the
    tokenizer's own. The model sees the latest ``window`` tokens at most (default and cap: its
    ``max_seq_len``; a run's training window length is a better choice, since the model never saw
    positions beyond it). The model goes back to training mode afterwards if it was in it.
    """
    from tinylm.data.tokenizer import special_ids as tokenizer_special_ids

    check_sampling(max_new_tokens, temperature, top_k)
    config = model.config
    if config.kind != "decoder":
        raise UserError(f"a {config.flavour} model is an encoder: it fills in masked tokens and cannot continue a "
                        "prompt; generate from a decoder (llama, gemma, gpt2, neox)")
    specials = tokenizer_special_ids(tokenizer) if special_ids is None else special_ids
    eos = specials.get("eos")
    if window is not None and window < 1:
        raise UserError(f"a window of {window} tokens: give 1 or more")
    window = min(window or config.max_seq_len, config.max_seq_len)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            return [_continue(model, tokenizer, prompt, max_new_tokens, temperature, top_k, seed, eos, window)
                    for prompt in prompts]
    finally:
        model.train(was_training)


def _continue(model, tokenizer, prompt, max_new_tokens, temperature, top_k, seed, eos, window) -> Continuation:
    device = next(model.parameters()).device
    ids = ([eos] if eos is not None else []) + tokenizer.encode(prompt, add_special_tokens=False).ids
    if not ids:
        raise UserError("the prompt is empty and the tokenizer has no end-of-text token to start from: give a prompt")
    generator = torch.Generator(device="cpu").manual_seed(_prompt_seed(seed, prompt))
    new: list[int] = []
    for _ in range(max_new_tokens):
        context = torch.tensor([ids[-window:]], device=device)  # the model sees at most its window
        logits = model(context)[0, -1].float().cpu()
        token = _pick(logits, temperature, top_k, generator)
        ids.append(token)
        new.append(token)
        if token == eos:
            break
    ended = bool(new) and new[-1] == eos
    return Continuation(prompt, tokenizer.decode(new, skip_special_tokens=True), new, ended)


def _prompt_seed(seed: int, prompt: str) -> int:
    return (int(seed) * 1_000_003 + zlib.crc32(prompt.encode("utf-8"))) % (2**63 - 1)


def _pick(logits: torch.Tensor, temperature: float, top_k: int | None, generator: torch.Generator) -> int:
    if temperature == 0 or top_k == 1:
        return int(torch.argmax(logits))
    if top_k is not None and top_k < logits.numel():
        kth = torch.topk(logits, top_k).values[-1]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = torch.softmax(logits / temperature, dim=-1)
    return int(torch.multinomial(probs, 1, generator=generator))
