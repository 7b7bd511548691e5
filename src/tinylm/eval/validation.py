"""Validation loss and perplexity: the training loop's evals and `tinylm eval --val` are this one code.

Design: "a fixed, seeded set of windows, identical across runs so runs are comparable". The
windows are drawn by ``tinylm.data.batches.validation_batches`` (the data layer, beneath both
training and evaluation: the same samplers and collator the training stream uses) and scored by
``evaluate`` here, which the training loop calls; evaluation never calls into training.

``validation_loss`` uses the run's own recipe values when it has them (``data.seq_len``,
``eval.windows``, ``eval.batch_size``, ``eval.seed``, ``train.precision`` resolved on the model's
device, so ``auto`` is what training on that device computed in): on the run's store the number
equals the training log's last ``val_loss`` to the last digit, and two runs evaluated on one store
are compared on identical windows. Without a recipe (a checkpoint moved away, an imported model)
it uses the defaults below, which are also the recipe's `eval:` defaults.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from tinylm.data.mlm import MLM_PROBABILITY
from tinylm.errors import UserError
from tinylm.losses.labelled import labelled_logits
from tinylm.precision import autocast, resolve_precision

# The fixed validation set where no recipe says otherwise (`tinylm.train.recipe.EvalSection` defaults to them).
WINDOWS = 32        # windows scored
BATCH_SIZE = 16     # windows per forward pass
SEED = 1234         # the windows' seed: not a run seed, so every run is scored alike


@torch.no_grad()
def evaluate(model, batches: list[dict], device: torch.device | None = None, precision: str = "fp32") -> dict:
    """Validation loss over `batches` (token-weighted mean cross-entropy) and its perplexity, computed on
    `device` (the model's, by default) in a resolved `precision` (fp32 | bf16 | fp16 autocast)."""
    from tinylm.data.batches import to_device

    device = torch.device(device) if device is not None else next(model.parameters()).device
    was_training = model.training
    model.eval()
    total = torch.zeros((), dtype=torch.float64, device=device)
    count = 0
    for batch in batches:
        batch = to_device(batch, device)
        labels = batch["labels"]
        with autocast(device, precision):  # a masked LM: its head at the labelled positions only
            logits, labels = labelled_logits(model, batch["input_ids"], batch.get("attention_mask"), labels)
        total += F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=-100,
                                 reduction="sum").double()
        count += int((labels != -100).sum())
    model.train(was_training)
    loss = float(total) / max(1, count)
    return {"val_loss": loss, "val_ppl": math.exp(min(loss, 50.0))}


@dataclass(frozen=True)
class ValidationSet:
    """Which windows are scored and how: what ``validation_batches`` draws (it reads `sampler`, `seq_len`,
    `mlm_probability`) plus the count, seed, batch size and precision, and where they came from."""
    sampler: str                        # windows | chunks | epochs: fixed windows; mlm: masked documents
    seq_len: int
    windows: int = WINDOWS
    batch_size: int = BATCH_SIZE
    seed: int = SEED
    mlm_probability: float | None = MLM_PROBABILITY
    precision: str = "fp32"             # as requested (auto is resolved on the model's device when scoring)
    origin: str = "defaults (no run recipe)"


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


def validation_settings(model, recipe=None, windows: int | None = None, seq_len: int | None = None) -> ValidationSet:
    """The validation set of the run's `recipe` (its data, eval and train.precision values), or the defaults
    for this model, with `windows`/`seq_len` overriding either."""
    if recipe is not None:
        data, ev = recipe.data, recipe.eval
        chosen = ValidationSet(data.sampler, data.seq_len, ev.windows, ev.batch_size, ev.seed, data.mlm_probability,
                               recipe.train.precision, "run recipe")
    else:
        kind = model.config.kind
        chosen = ValidationSet("mlm" if kind == "encoder" else "windows", min(128, int(model.config.max_seq_len)))
    if windows is not None or seq_len is not None:
        chosen = dataclasses.replace(chosen, windows=chosen.windows if windows is None else int(windows),
                                     seq_len=chosen.seq_len if seq_len is None else int(seq_len),
                                     origin=chosen.origin + " with overrides")
    if chosen.seq_len > model.config.max_seq_len:
        raise UserError(f"validation windows of {chosen.seq_len} tokens exceed the model's max_seq_len "
                        f"{model.config.max_seq_len}: pass a smaller --val-seq-len")
    return chosen


def validation_loss(model, store_path, *, tokenizer=None, tokenizer_path=None, recipe=None,
                    windows: int | None = None, seq_len: int | None = None) -> dict:
    """Token-weighted mean cross-entropy over the fixed seeded validation windows of ``store_path``."""
    from tinylm.data.batches import validation_batches
    from tinylm.data.store import TokenStore

    started = time.perf_counter()
    store = TokenStore.open(store_path)
    if tokenizer is not None:
        check_same_tokenizer(tokenizer_path, tokenizer, store)
    if store.vocab_size > model.config.vocab_size:
        raise UserError(f"token store {store.path} has a vocabulary of {store.vocab_size}, larger than the model's "
                        f"{model.config.vocab_size}: evaluate on a store prepared with the model's tokenizer")
    chosen = validation_settings(model, recipe, windows, seq_len)
    if chosen.windows < 1:
        raise UserError("the number of validation windows must be at least 1")
    batches = validation_batches(store, chosen, chosen.windows, chosen.batch_size, chosen.seed)
    device = next(model.parameters()).device
    precision = resolve_precision(chosen.precision, device).precision  # `auto` as training resolves it, on this device
    with torch.inference_mode():
        result = evaluate(model, batches, device, precision)
    tokens = sum(int((b["labels"] != -100).sum()) for b in batches)
    return {
        "val_loss": result["val_loss"], "val_ppl": result["val_ppl"],
        "store": str(Path(store.path).resolve()), "windows": chosen.windows, "seq_len": chosen.seq_len,
        "seed": chosen.seed, "batch_size": chosen.batch_size, "scored_tokens": tokens, "precision": precision,
        "settings": chosen.origin, "seconds": round(time.perf_counter() - started, 2),
    }
