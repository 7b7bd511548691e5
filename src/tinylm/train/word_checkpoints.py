"""Checkpoints at words seen: the BabyLM challenge's revisions `chck_1M`, ..., `chck_10M`, ..., `chck_100M`.

BabyLM 2025 asks for the model after 1M, 2M, ..., 10M words, then every 10M to 100M, then every 100M
to 1000M words trained on (repeats across epochs counted; babylm/evaluation-pipeline-2025, README
"Submission Requirements", and `evaluation_pipeline/collate_preds.py`'s revision lists). A recipe asks
for them with `checkpoint: {words: [1M, 2M, 10M]}` (or `words: babylm`, that whole list): the run saves
a checkpoint at the first step whose words seen (`tinylm.data.words_seen`) reach each value. Those
checkpoints are kept whatever `checkpoint.keep` says; the table of which step holds which milestone is
part of every checkpoint's state, so a resumed run knows what it has saved and what is still to come.
"""

from __future__ import annotations

import math

from tinylm.data.words_seen import SCALE
from tinylm.errors import UserError

MAX_WORDS = 10**15  # beyond any corpus: a typo (an exponent too many), not a budget
BABYLM = ([m * 10**6 for m in range(1, 10)] + [m * 10**7 for m in range(1, 10)]
          + [m * 10**8 for m in range(1, 11)])  # chck_1M .. chck_9M, chck_10M .. chck_90M, chck_100M .. chck_1000M


def label(words: int) -> str:
    """The revision name of a milestone: `chck_1M`, `chck_20M`, `chck_1000M` (BabyLM's), `chck_500k` below 1M."""
    for unit, suffix in ((10**6, "M"), (10**3, "k")):
        if words % unit == 0:
            return f"chck_{words // unit}{suffix}"
    return f"chck_{words}"


def parse_milestones(value) -> list[int]:
    """`[1M, 2M, 10M]` (or `babylm`) -> strictly increasing word counts; a mistake is one line."""
    if value is None:
        return []
    if value in ("babylm", ["babylm"]):
        return list(BABYLM)
    if not isinstance(value, list) or not value:
        raise UserError(f"recipe key `checkpoint.words` is {value!r}: give a list of word counts, e.g. "
                        "[1M, 2M, 10M], or `babylm` for BabyLM's 1M..10M, 20M..100M, 200M..1000M")
    from tinylm.data.subsets import parse_words
    counts = []
    for item in value:
        try:
            words = parse_words(item)
        except (UserError, OverflowError, ValueError):
            words = None
        if words is None or not math.isfinite(words) or not 1 <= words <= MAX_WORDS:
            raise UserError(f"recipe key `checkpoint.words` holds {item!r}: each entry is a positive word count up "
                            "to 1e15, e.g. 1M, 500k or 2000000")
        counts.append(int(words))
    if any(b <= a for a, b in zip(counts, counts[1:])):
        raise UserError(f"recipe key `checkpoint.words` is {value!r}: the word counts must increase, e.g. "
                        "[1M, 2M, 10M]")
    return counts


class WordCheckpoints:
    """Which milestones the run has saved (label -> step and words) and which are due."""

    def __init__(self, milestones: list[int]):
        self.milestones = list(milestones)
        self.saved: dict[str, dict] = {}

    def due(self, words_seen: int | None) -> list[int]:
        """Milestones reached (words seen, SCALE units) and not saved yet."""
        if words_seen is None:
            return []
        return [m for m in self.milestones if m * SCALE <= words_seen and label(m) not in self.saved]

    def record(self, step: int, words_seen: int | None) -> None:
        """The checkpoint about to be written at `step` holds every milestone now due."""
        for m in self.due(words_seen):
            self.saved[label(m)] = {"words": m, "step": int(step), "words_seen": words_seen / SCALE}

    def steps(self) -> set[int]:
        return {entry["step"] for entry in self.saved.values()}

    def state_dict(self) -> dict:
        return {k: dict(v) for k, v in self.saved.items()}

    def load_state_dict(self, state: dict | None) -> None:
        self.saved = {k: dict(v) for k, v in (state or {}).items()}


def check_store_counts_words(milestones: list[int], store) -> None:
    """Words checkpoints need a store that counts words: refused before the run directory is touched."""
    if milestones and not store.has_words("train"):
        raise UserError(f"recipe key `checkpoint.words` asks for checkpoints at words seen, but token store "
                        f"{store.path} does not count words (written by an older tinylm): prepare it again with "
                        "`tinylm prepare`, or drop `checkpoint.words`")
