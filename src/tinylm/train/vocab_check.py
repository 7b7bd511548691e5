"""A token store meets a model: every id the store holds must be a row of the model's embedding.

Without this check a store prepared with another tokenizer (resuming or initialising a run on the
wrong store), or a store whose meta.json says a smaller vocabulary than its ids need, trained until
the first batch reached the embedding and ended in `IndexError: index out of range in self`.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from tinylm.errors import UserError

_PREPARE = "re-create it with `tinylm prepare SOURCES --tokenizer NAME --out DIR`"
CHUNK = 1 << 26  # ids per read when scanning a split (128 MiB of uint16)


def max_token_id(store) -> int:
    """The largest id in any split of the store (-1 when empty): one streaming pass over the memory maps,
    about 0.1 s per 100M tokens from the page cache; done once per run build."""
    top = -1
    for name in store.splits:
        ids = store.split(name)
        for start in range(0, len(ids), CHUNK):
            top = max(top, int(np.max(ids[start:start + CHUNK])))
    return top


def store_tokenizer_sha(store) -> str:
    recorded = store.meta["tokenizer"].get("sha256")
    if recorded:  # TokenStore.open has checked the file against it
        return recorded
    from tinylm.rundir.files import sha256_file
    return sha256_file(store.path / store.meta["tokenizer"].get("file", "tokenizer.json"))


def check_store_fits_model(store, vocab_size: int, ckpt: Path | None = None) -> None:
    """Refuse, in one line, a store whose ids the model cannot embed; on a resume, also a store prepared with
    another tokenizer than the run's checkpoint carries (its ids would mean other words to the model)."""
    if ckpt is not None and (ckpt / "tokenizer.json").is_file():
        from tinylm.rundir.files import sha256_file
        if sha256_file(ckpt / "tokenizer.json") != store_tokenizer_sha(store):
            theirs = _checkpoint_tokenizer_name(ckpt)
            raise UserError(f"token store {store.path} was prepared with another tokenizer "
                            f"({store.meta['tokenizer'].get('name')}) than the run's checkpoint {ckpt.name} carries "
                            f"({theirs}): its ids would mean other words to the model; resume with the run's own "
                            "store (data.store), or start a new run on this store")
    top = max_token_id(store)
    if top >= store.vocab_size:
        raise UserError(f"token store {store.path} holds token id {top}, outside the vocabulary of "
                        f"{store.vocab_size} its meta.json records (edited, or prepared with another tokenizer); "
                        f"{_PREPARE}")
    if top >= vocab_size or store.vocab_size > vocab_size:
        need = max(top + 1, store.vocab_size)
        raise UserError(f"token store {store.path} holds ids up to {max(top, store.vocab_size - 1)} "
                        f"(tokenizer {store.meta['tokenizer'].get('name')}), outside the model's vocabulary of "
                        f"{vocab_size}: train on a store prepared with the model's tokenizer, or give the model "
                        f"at least {need} ids (model.vocab_size: auto on a new run)")


def _checkpoint_tokenizer_name(ckpt: Path) -> str:
    try:
        return str(json.loads((ckpt / "tokenizer_meta.json").read_text()).get("name"))
    except (OSError, ValueError, AttributeError):
        return "its tokenizer.json"
