"""Token statistics of a (pretraining set, task) pair, and pretraining sets chosen by their tokens.

The committee paper explains its pretraining gap with four numbers: W_S (paragraphs pretrained on),
T_W (distinct tokens in them), T_C (distinct tokens in the task: T_FR, T_AGN, T_DBP) and T_M (task
tokens never seen in pretraining). It controls them with three constructions, all here:

* ``random_paragraphs``: W_S paragraphs drawn at random (seeded), as its tables 3, 5, 6;
* ``paragraphs_within(T_FR)``: only paragraphs made solely of task tokens (its table 1), which shrinks
  T_W to about the task's vocabulary;
* ``avoiding_tokens``: the inverse (its tables 4, 7): paragraphs made only of tokens *absent* from
  the task plus the K most common pretraining tokens, which raises T_M on purpose at a given W_S.

The paper leaves open a frequency-weighted overlap; we report two: the share of the task's token
*occurrences* whose token occurs in pretraining (``covered_mass``; 1 - covered_mass is a weighted
T_M), and the histogram intersection sum_t min(p_task(t), p_pre(t)) of the two unigram distributions.
Special tokens ([CLS], [SEP], [PAD], ...) are never counted.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from tinylm.data.store import TokenStore
from tinylm.errors import UserError

_TAG_PARAGRAPHS = 12


@dataclass
class TokenStatistics:
    W_S: int  # pretraining paragraphs (documents)
    T_W: int  # distinct tokens in pretraining
    T_C: int  # distinct tokens in the task
    T_M: int  # task tokens absent from pretraining
    covered_mass: float  # share of task token occurrences whose token occurs in pretraining
    histogram_intersection: float  # sum over tokens of min(p_task, p_pretraining)

    def to_dict(self) -> dict:
        return asdict(self)


def _special_ids(store_or_ids) -> np.ndarray:
    ids = store_or_ids.special_ids.values() if hasattr(store_or_ids, "special_ids") else store_or_ids
    return np.asarray(sorted(int(i) for i in ids), dtype=np.int64)


def store_token_counts(store: TokenStore, split: str = "train", docs: np.ndarray | None = None) -> np.ndarray:
    """Occurrences of every id (special tokens zeroed) in ``split``, or in its documents ``docs``."""
    tokens, counts = store.split(split), np.zeros(store.vocab_size, dtype=np.int64)
    if docs is None:
        for j in range(0, len(tokens), 1 << 22):
            counts += np.bincount(tokens[j : j + (1 << 22)], minlength=store.vocab_size)[: store.vocab_size]
    else:
        offsets = np.asarray(store.documents(split))
        for d in np.asarray(docs, dtype=np.int64):
            counts += np.bincount(tokens[offsets[d] : offsets[d + 1]], minlength=store.vocab_size)[: store.vocab_size]
    counts[_special_ids(store)] = 0
    return counts


def text_token_counts(tokenizer, texts, vocab_size: int, special_ids=()) -> np.ndarray:
    """Occurrences of every id in ``texts`` encoded without special tokens."""
    counts = np.zeros(vocab_size, dtype=np.int64)
    for enc in tokenizer.encode_batch(list(texts), add_special_tokens=False):
        counts += np.bincount(np.asarray(enc.ids, dtype=np.int64), minlength=vocab_size)[:vocab_size]
    counts[_special_ids(special_ids)] = 0
    return counts


def token_statistics(pretraining: np.ndarray, task: np.ndarray, paragraphs: int) -> TokenStatistics:
    """The paper's W_S, T_W, T_C, T_M and the two frequency-weighted overlaps, from two count vectors."""
    pre, cls = np.asarray(pretraining, dtype=np.int64), np.asarray(task, dtype=np.int64)
    if pre.shape != cls.shape:
        raise UserError(f"token counts of different vocabularies ({len(pre)} vs {len(cls)} ids): pretraining and "
                        "task must be encoded with the same tokenizer")
    seen, needed = pre > 0, cls > 0
    total_task, total_pre = int(cls.sum()), int(pre.sum())
    covered = float(cls[seen].sum() / total_task) if total_task else 0.0
    inter = (float(np.minimum(cls / total_task, pre / total_pre).sum()) if total_task and total_pre else 0.0)
    return TokenStatistics(int(paragraphs), int(seen.sum()), int(needed.sum()), int((needed & ~seen).sum()),
                           covered, inter)


# ------------------------------------------------------------------ choosing paragraphs
def random_paragraphs(store: TokenStore, count: int, seed: int = 0) -> np.ndarray:
    """Sorted indices of ``count`` train documents drawn without replacement; nested in ``count``
    for one seed (the first k of one seeded order), like the word-count subsets."""
    n = len(store.documents("train")) - 1
    if not 1 <= count <= n:
        raise UserError(f"asked for {count:,} paragraphs but the train split of {store.path} has {n:,}; "
                        f"ask for 1 to {n:,}")
    order = np.random.default_rng([int(seed), _TAG_PARAGRAPHS]).permutation(n)
    return np.sort(order[:count])


def paragraphs_within(store: TokenStore, allowed: np.ndarray) -> np.ndarray:
    """Sorted indices of the non-empty train documents whose every (non-special) token is ``allowed``."""
    allowed = np.asarray(allowed, dtype=bool).copy()
    if len(allowed) != store.vocab_size:
        raise UserError(f"token set over {len(allowed)} ids, but the store has {store.vocab_size}")
    specials = _special_ids(store)
    allowed[specials[specials < len(allowed)]] = True
    tokens = store.split("train")
    offsets = np.asarray(store.documents("train"), dtype=np.int64)
    n_docs = len(offsets) - 1
    outside = np.zeros(n_docs, dtype=np.int64)  # disallowed tokens per document
    real = np.zeros(n_docs, dtype=np.int64)  # non-special tokens per document
    step = 1 << 22  # chunks of tokens: memory stays bounded for any store
    for j in range(0, len(tokens), step):
        chunk = np.asarray(tokens[j : j + step], dtype=np.int64)
        doc = np.searchsorted(offsets, np.arange(j, j + len(chunk)), side="right") - 1
        outside += np.bincount(doc, weights=~allowed[chunk], minlength=n_docs).astype(np.int64)
        real += np.bincount(doc, weights=~np.isin(chunk, specials), minlength=n_docs).astype(np.int64)
    return np.flatnonzero((outside == 0) & (real > 0))


def avoiding_tokens(pretraining: np.ndarray, task: np.ndarray, keep_common: int = 1000) -> np.ndarray:
    """Allowed ids for the paper's inverse construction: every id the task does not use, plus the
    ``keep_common`` most frequent pretraining ids (function words, punctuation) so that paragraphs
    can still be written with them. Paragraphs within this set raise T_M on purpose."""
    pre, cls = np.asarray(pretraining), np.asarray(task)
    allowed = cls == 0
    if keep_common > 0:
        common = np.argsort(-pre, kind="stable")[:keep_common]
        allowed[common[pre[common] > 0]] = True
    return allowed


def cap_paragraphs(docs: np.ndarray, count: int | None, seed: int = 0) -> np.ndarray:
    """At most ``count`` of ``docs`` (seeded), so constructions can be compared at one W_S."""
    docs = np.asarray(docs)
    if count is None or count >= len(docs):
        return np.sort(docs)
    pick = np.random.default_rng([int(seed), _TAG_PARAGRAPHS, 1]).permutation(len(docs))[:count]
    return np.sort(docs[pick])
