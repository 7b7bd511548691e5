"""Fill in a masked token with an encoder: what an MLM-trained BERT can show instead of a continuation.

``fill_mask(model, tokenizer, "the [MASK] sat on the mat")`` reads the text as the model read its
training windows (the tokenizer's own [CLS] ... [SEP] framing) and returns, for each mask token, the
``top_k`` likeliest tokens with their probabilities (softmax over the whole vocabulary at that position).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from tinylm.errors import UserError


@dataclass
class Filler:
    token: str  # as the tokenizer decodes the id alone (WordPiece continuations keep their "##")
    id: int
    probability: float


def fill_mask(model, tokenizer, text: str, *, top_k: int = 5, special_ids: dict | None = None) -> list[list[Filler]]:
    """For each mask in ``text`` (left to right), its ``top_k`` likeliest fillers, likeliest first."""
    from tinylm.data.tokenizer import special_ids as tokenizer_special_ids

    if model.config.kind != "encoder":
        raise UserError(f"--fill needs an encoder (bert); a {model.config.flavour} model is a decoder: continue a "
                        "prompt with --prompt instead")
    if top_k < 1:
        raise UserError(f"top-k {top_k}: give a number of fillers to show, 1 or more")
    specials = tokenizer_special_ids(tokenizer) if special_ids is None else special_ids
    mask_id = specials.get("mask")
    if mask_id is None:
        raise UserError("the model's tokenizer has no mask token, so there is nothing to fill in: give a model "
                        "trained with masked-language modelling")
    mask_text = tokenizer.id_to_token(int(mask_id))
    ids = tokenizer.encode(text).ids
    positions = [i for i, t in enumerate(ids) if t == mask_id]
    if not positions:
        raise UserError(f"{text!r} has no {mask_text}: write {mask_text} where the missing word goes")
    if len(ids) > model.config.max_seq_len:
        raise UserError(f"the text is {len(ids)} tokens, longer than the model's window ({model.config.max_seq_len})"
                        ": shorten it")
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            logits = model(torch.tensor([ids], device=device))[0, positions].float().cpu()
    finally:
        model.train(was_training)
    probs = torch.softmax(logits, dim=-1)
    top = probs.topk(min(top_k, probs.shape[-1]), dim=-1)
    return [[Filler(tokenizer.decode([int(i)], skip_special_tokens=False), int(i), float(p))
             for p, i in zip(values.tolist(), indices.tolist())]
            for values, indices in zip(top.values, top.indices)]
