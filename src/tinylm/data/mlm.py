"""Masked-language-model corruption, as BERT and Hugging Face's DataCollatorForLanguageModeling.

Of the positions that are neither padding nor special tokens, each is selected with probability
``mlm_probability`` (15%); a selected position becomes [MASK] 80% of the time, a random
non-special token 10%, and stays unchanged 10%. Labels hold the original id at selected
positions and -100 (ignored by cross-entropy) everywhere else.

Draws depend only on (seed, position), so a resumed run masks the same way; they are made for
the *global* batch and sliced by rank, so data-parallel ranks mask exactly as one process would.
"""

from __future__ import annotations

import numpy as np
import torch

from tinylm.data.samplers import rng_for
from tinylm.errors import UserError

IGNORE_INDEX = -100
MLM_PROBABILITY = 0.15  # BERT's; a recipe's `data.mlm_probability` and validation without a recipe default to it
_TAG_MLM = 6


class MLMCollator:
    """``collator(input_ids, position, attention_mask=None) -> (masked_inputs, labels)``."""

    def __init__(self, vocab_size: int, mask_id: int, special_ids, mlm_probability: float = MLM_PROBABILITY, seed: int = 0,
                 rank: int = 0, world_size: int = 1, max_len: int | None = None):
        if not 0 < mlm_probability < 1:
            raise UserError(f"mlm_probability must be in (0, 1), not {mlm_probability}")
        if mask_id is None:
            raise UserError("the tokenizer has no [MASK] token; MLM needs an encoder tokenizer "
                            "(bert-base-uncased or wordpiece:N)")
        specials = special_ids.values() if isinstance(special_ids, dict) else special_ids
        self.special = np.unique(np.asarray([int(i) for i in specials] + [int(mask_id)], dtype=np.int64))
        self.replacements = np.setdiff1d(np.arange(vocab_size, dtype=np.int64), self.special)
        self.vocab_size, self.mask_id, self.p = int(vocab_size), int(mask_id), float(mlm_probability)
        self.seed, self.rank, self.world_size = int(seed), int(rank), int(world_size)
        self.max_len = max_len  # draw this wide so masks do not depend on how wide a batch was padded

    def __call__(self, input_ids: torch.Tensor, position: int, attention_mask: torch.Tensor | None = None):
        ids = input_ids.cpu().numpy().astype(np.int64, copy=False)
        rows, width = ids.shape
        draw_width = max(width, self.max_len or 0)
        rng = rng_for(self.seed, _TAG_MLM, position)
        shape = (rows * self.world_size, draw_width)
        pick = lambda a: a[self.rank :: self.world_size, :width]  # noqa: E731 - this rank's rows
        select_u = pick(rng.random(shape))
        action_u = pick(rng.random(shape))
        random_tok = pick(rng.integers(0, len(self.replacements), size=shape))

        eligible = ~np.isin(ids, self.special)
        if attention_mask is not None:
            eligible &= attention_mask.cpu().numpy().astype(bool)
        selected = eligible & (select_u < self.p)
        masked = ids.copy()
        to_mask = selected & (action_u < 0.8)
        to_random = selected & (action_u >= 0.8) & (action_u < 0.9)
        masked[to_mask] = self.mask_id
        masked[to_random] = self.replacements[random_tok[to_random]]
        labels = np.where(selected, ids, IGNORE_INDEX)
        return torch.from_numpy(masked), torch.from_numpy(labels)
