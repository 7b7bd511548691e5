"""Nested random subsets of a store's train split by word count, for data-scaling studies.

BabyLlama-2 (appendix B) trains on 1M, 2M, ... words and needs each smaller set inside the larger,
so differences come from the amount of data, not from which data. Documents get one seeded random
order; the subset of W words is the shortest prefix of that order holding at least W words, so
subsets of growing W are nested by construction. Val (and test) are kept whole.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from tinylm.data.atomic_dir import atomic_directory
from tinylm.data.store import TokenStore
from tinylm.data.store_writer import SplitWriter
from tinylm.errors import UserError

_TAG_SUBSET = 7


def parse_words(text: str) -> int:
    """``"1M"`` -> 1_000_000, ``"500k"`` -> 500_000, ``"2000"`` -> 2000."""
    t = str(text).strip().lower().replace("_", "")
    scale = {"k": 10**3, "m": 10**6, "b": 10**9}.get(t[-1:], 1)
    try:
        value = float(t[:-1] if scale != 1 else t) * scale
    except ValueError:
        raise UserError(f"cannot read word count {text!r}; write e.g. 1M, 500k or 2000000") from None
    if value <= 0:
        raise UserError(f"word count {text!r} must be positive")
    return int(value)


def nested_subsets(store: TokenStore, word_budgets: list[int], seed: int = 0) -> list[np.ndarray]:
    """For each budget, the sorted train-document indices of its subset; subsets are nested."""
    words = np.asarray(store.document_words("train"), dtype=np.int64)
    total = int(words.sum())
    for w in word_budgets:
        if w > total:
            raise UserError(f"asked for a {w:,}-word subset but the train split has only {total:,} words; "
                            "use a smaller budget")
    order = np.random.default_rng([int(seed), _TAG_SUBSET]).permutation(len(words))
    cumulative = np.cumsum(words[order])
    out = []
    for w in word_budgets:
        n_docs = int(np.searchsorted(cumulative, w, side="left")) + 1
        out.append(np.sort(order[:n_docs]))
    return out


def write_subset(store: TokenStore, words: int, out, seed: int = 0, overwrite: bool = False) -> TokenStore:
    """Write a new store whose train split is the ``words``-word subset; other splits are copied.

    Written to a temporary directory and renamed, like ``prepare``.
    """
    (docs,) = nested_subsets(store, [words], seed)
    return write_documents(store, docs, out, {"words": int(words), "seed": int(seed)}, overwrite)


def write_documents(store: TokenStore, docs: np.ndarray, out, subset_info: dict,
                    overwrite: bool = False) -> TokenStore:
    """Write a new store whose train split is the train documents ``docs`` (sorted indices); other
    splits are copied and ``meta["subset"]`` records ``subset_info``. Shared by every way of choosing
    documents (word budgets here, paragraph counts and token sets in ``overlap.py``)."""
    out = Path(out).expanduser()
    if out.exists() and not (overwrite and (out / "meta.json").is_file()):
        raise UserError(f"{out} already exists; choose another --out (or --force to replace a store)")
    docs = np.sort(np.asarray(docs, dtype=np.int64))
    if len(docs) == 0:
        raise UserError(f"no train document of {store.path} fits this subset; loosen the selection")
    with atomic_directory(out) as tmp:
        meta = json.loads(json.dumps(store.meta))
        writer = SplitWriter(tmp, "train", meta["dtype"], store.vocab_size)
        tokens, offsets = store.split("train"), np.asarray(store.documents("train"))
        doc_words = np.asarray(store.document_words("train"))
        for i in range(0, len(docs), 4096):  # runs of documents: bounded memory
            chunk = docs[i : i + 4096]
            lengths = offsets[chunk + 1] - offsets[chunk]
            parts = [np.asarray(tokens[offsets[d] : offsets[d + 1]]) for d in chunk]
            writer.write(np.concatenate(parts), lengths, doc_words[chunk])
        meta["splits"]["train"] = writer.close()
        counts = writer.counts
        for name, info in store.meta["splits"].items():
            if name != "train":
                for key in ("file", "documents_file", "words_file"):
                    shutil.copyfile(store.path / info[key], tmp / info[key])
                split_tokens = store.split(name)
                for j in range(0, len(split_tokens), 1 << 22):
                    counts += np.bincount(split_tokens[j : j + (1 << 22)], minlength=len(counts))[: len(counts)]
        shutil.copyfile(store.path / meta["tokenizer"]["file"], tmp / meta["tokenizer"]["file"])
        splits = meta["splits"].values()
        meta["counts"] = {"documents": sum(s["documents"] for s in splits), "words": sum(s["words"] for s in splits),
                          "tokens": sum(s["tokens"] for s in splits), "distinct_tokens": int(np.count_nonzero(counts))}
        meta["subset"] = {"of": str(store.path.resolve()), "words": int(doc_words[docs].sum()), **subset_info,
                          "documents": int(len(docs))}
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return TokenStore.open(out)
