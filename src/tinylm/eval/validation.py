"""Validation loss and perplexity on a token store, on the very windows the training loop uses.

The windows come from ``tinylm.train.batches.validation_batches`` and the loss from
``tinylm.train.loop.evaluate``, with the run's own recipe values (``data.seq_len``,
``eval.windows``, ``eval.batch_size``, ``eval.seed``, ``train.precision`` resolved on the model's device,
so ``auto`` is what training on that device computed in); so on the run's store
the number equals the training log's last ``val_loss`` to the last digit, and two runs evaluated on
one store are compared on identical windows.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from types import SimpleNamespace

from tinylm.errors import UserError
from tinylm.precision import resolve_precision


def _file_sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def check_same_tokenizer(tokenizer_path: Path, tokenizer, store) -> None:
    """The store's ids must mean what the model's ids mean."""
    meta = store.meta.get("tokenizer", {})
    if meta.get("sha256") and tokenizer_path is not None and Path(tokenizer_path).is_file():
        if _file_sha256(tokenizer_path) == meta["sha256"]:
            return
    ours = tokenizer.get_vocab(with_added_tokens=True)
    theirs = store.tokenizer.get_vocab(with_added_tokens=True)
    if ours != theirs:
        raise UserError(f"token store {store.path} was tokenized with {meta.get('name', 'another tokenizer')!r}, "
                        "not the model's tokenizer: prepare the text with the model's tokenizer "
                        "(`tinylm prepare SOURCES --tokenizer CHECKPOINT/tokenizer.json --out DIR`)")


def validation_settings(model, recipe=None, windows: int | None = None, seq_len: int | None = None):
    """(data section, eval section, precision, where they came from) for ``validation_batches``."""
    from tinylm.train.recipe import DataSection, EvalSection

    if recipe is not None:
        data, ev, precision, origin = recipe.data, recipe.eval, recipe.train.precision, "run recipe"
    else:
        kind = model.config.kind
        data = DataSection(store="-", sampler="mlm" if kind == "encoder" else "windows",
                           seq_len=min(128, int(model.config.max_seq_len)))
        ev, precision, origin = EvalSection(), "fp32", "defaults (no run recipe)"
    if windows is not None or seq_len is not None:
        import dataclasses
        if windows is not None:
            ev = dataclasses.replace(ev, windows=int(windows))
        if seq_len is not None:
            data = dataclasses.replace(data, seq_len=int(seq_len))
        origin += " with overrides"
    if data.seq_len > model.config.max_seq_len:
        raise UserError(f"validation windows of {data.seq_len} tokens exceed the model's max_seq_len "
                        f"{model.config.max_seq_len}: pass a smaller --val-seq-len")
    return data, ev, precision, origin


def validation_loss(model, store_path, *, tokenizer=None, tokenizer_path=None, recipe=None,
                    windows: int | None = None, seq_len: int | None = None) -> dict:
    """Token-weighted mean cross-entropy over the fixed seeded validation windows of ``store_path``."""
    import torch

    from tinylm.data import TokenStore
    from tinylm.train.batches import validation_batches
    from tinylm.train.loop import evaluate

    started = time.perf_counter()
    store = TokenStore.open(store_path)
    if tokenizer is not None:
        check_same_tokenizer(tokenizer_path, tokenizer, store)
    if store.vocab_size > model.config.vocab_size:
        raise UserError(f"token store {store.path} has a vocabulary of {store.vocab_size}, larger than the model's "
                        f"{model.config.vocab_size}: evaluate on a store prepared with the model's tokenizer")
    data, ev, precision, origin = validation_settings(model, recipe, windows, seq_len)
    if ev.windows < 1:
        raise UserError("the number of validation windows must be at least 1")
    batches = validation_batches(store, data, ev.windows, ev.batch_size, ev.seed)
    device = next(model.parameters()).device
    precision = resolve_precision(precision, device).precision  # `auto` as training resolves it, on this device
    run = SimpleNamespace(model=model, val_batches=batches, device=device, precision=precision)
    with torch.inference_mode():
        result = evaluate(run)
    tokens = sum(int((b["labels"] != -100).sum()) for b in batches)
    return {
        "val_loss": result["val_loss"], "val_ppl": result["val_ppl"],
        "store": str(Path(store.path).resolve()), "windows": ev.windows, "seq_len": data.seq_len,
        "seed": ev.seed, "batch_size": ev.batch_size, "scored_tokens": tokens, "precision": precision,
        "settings": origin, "seconds": round(time.perf_counter() - started, 2),
    }
