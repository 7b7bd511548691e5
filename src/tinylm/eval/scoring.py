"""Batched log-probabilities of token sequences: the one hot loop every zero-shot benchmark shares.

A request is a row of input ids plus aligned labels (-100 where nothing is scored). Rows are
sorted by length (longest first, so a batch that does not fit in memory fails at once), cut into
batches by a token budget, padded on the right, run through one forward each, and reduced with
tensor ops: the only Python per batch is the slicing, none per pair or per sentence.

The model is reached only through ``logits_fn(input_ids, attention_mask) -> logits (B, T, V)``,
so an ensemble (mean logits, then log-softmax) is just another ``logits_fn``. A ``logits_fn`` may
also offer ``at(input_ids, attention_mask, select) -> (n, V)``: logits at the selected positions
only, which spares the vocabulary projection of positions nobody scores (encoders' PLL).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from tinylm.compiling import compiled
from tinylm.errors import UserError

LogitsFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
IGNORE = -100
# Largest logits tensor one batch may produce (elements): 2**26 float32 = 256 MiB.
MAX_LOGITS = 2**26


def keep_freed_memory() -> bool:
    """Let glibc reuse freed large blocks instead of returning them to the kernel (Linux only).

    Each batch allocates logits of up to 256 MiB; glibc serves blocks that large with a fresh
    ``mmap`` and unmaps them on free, so every batch page-faults its logits in again: on a 2-core
    CPU that was a sixth of the scoring time (system time 5.8 s -> 0.5 s per 4k pairs). Raising
    the mmap and trim thresholds keeps the memory in the heap for the next batch. It is a
    process-wide setting, so commands and benchmarks call it, library code does not. Returns
    whether it applied.
    """
    import ctypes
    import sys

    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # musl or another libc
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # <malloc.h>
    return bool(libc.mallopt(m_mmap_threshold, 1 << 30)) and bool(libc.mallopt(m_trim_threshold, 1 << 31))


# ------------------------------------------------------------------ models as logits functions
class ModelLogits:
    """``logits_fn`` for a tinylm model.

    Decoders drop the attention mask: padding is always on the right, and under causal attention
    a real position never sees a later one, so the logits of real positions are exactly those of
    the unpadded rows, and SDPA keeps its mask-free causal kernel (faster on CPU and GPU).
    """

    def __init__(self, model, compile: bool = False):
        self.model = model
        self.kind = getattr(model.config, "kind", "decoder")
        self.vocab_size = int(model.config.vocab_size)
        self.max_len = int(model.config.max_seq_len)
        # torch.compile fuses the norms, RoPE and gated MLP into a few kernels (on a 2-core CPU
        # about a quarter faster); shapes vary per batch, so it compiles once with dynamic shapes.
        self.forward = compiled(model, dynamic=True) if compile else model

    def __call__(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        if self.kind == "decoder":
            return self.forward(input_ids)
        return self.forward(input_ids, attention_mask=attention_mask)

    def at(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, select: torch.Tensor) -> torch.Tensor:
        m = self.model
        if self.kind != "encoder" or not hasattr(m, "encode"):
            return self(input_ids, attention_mask)[select]
        # Encoder.forward's MLM head, applied only where a token is masked (tested against forward).
        h = m.encode(input_ids, attention_mask)[select]
        h = m.mlm_norm(m.mlm_act(m.mlm_transform(h)))
        weight = m.embed_tokens.weight if m.lm_head is None else m.lm_head.weight
        return F.linear(h, weight, m.mlm_bias)


class EnsembleLogits:
    """Mean logits of several models that share a tokenizer (then the scorer's log-softmax)."""

    def __init__(self, members: Sequence[ModelLogits]):
        if not members:
            raise UserError("an ensemble needs at least one model")
        kinds = {m.kind for m in members}
        vocab = {m.vocab_size for m in members}
        if len(kinds) > 1 or len(vocab) > 1:
            raise UserError(f"ensemble members must share kind and vocabulary, got kinds {sorted(kinds)} and "
                            f"vocabularies {sorted(vocab)}: ensemble models trained with the same tokenizer")
        self.members = list(members)
        self.kind, self.vocab_size = kinds.pop(), vocab.pop()
        self.max_len = min(m.max_len for m in members)

    def __call__(self, input_ids, attention_mask):
        return torch.stack([m(input_ids, attention_mask).float() for m in self.members]).mean(0)

    def at(self, input_ids, attention_mask, select):
        return torch.stack([m.at(input_ids, attention_mask, select).float() for m in self.members]).mean(0)


# ------------------------------------------------------------------ requests
@dataclass
class Rows:
    """Token rows, flat: row i is ``inputs[offsets[i]:offsets[i+1]]`` with ``labels`` aligned."""

    inputs: np.ndarray
    labels: np.ndarray
    offsets: np.ndarray
    truncated: int = 0  # rows whose left end was cut to fit the model (lm-eval does the same)

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @classmethod
    def from_lists(cls, inputs: list[list[int]], labels: list[list[int]], truncated: int = 0) -> "Rows":
        lengths = np.fromiter((len(r) for r in inputs), dtype=np.int64, count=len(inputs))
        offsets = np.zeros(len(inputs) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        flat_in = np.fromiter((t for r in inputs for t in r), dtype=np.int64, count=int(offsets[-1]))
        flat_lab = np.fromiter((t for r in labels for t in r), dtype=np.int64, count=int(offsets[-1]))
        return cls(flat_in, flat_lab, offsets, truncated)


def causal_rows(contexts: Sequence[Sequence[int]], continuations: Sequence[Sequence[int]], max_len: int) -> Rows:
    """Rows scoring each continuation after its context, as lm-evaluation-harness builds them:
    ``(context + continuation)[-(max_len + 1):][:-1]`` is the input, and the continuation's tokens
    are the labels of its last ``len(continuation)`` positions."""
    inputs, labels, truncated = [], [], 0
    for ctx, cont in zip(contexts, continuations):
        if not cont:
            raise ValueError("empty continuation")  # callers reject empty texts with a UserError first
        if not ctx:
            raise ValueError("a causal row needs at least one context token (the start token)")
        whole = list(ctx) + list(cont)
        if len(whole) > max_len + 1:
            truncated += 1
            whole = whole[-(max_len + 1):]
        n = min(len(cont), len(whole) - 1)
        inputs.append(whole[:-1])
        labels.append([IGNORE] * (len(whole) - 1 - n) + whole[-n:])
    return Rows.from_lists(inputs, labels, truncated)


def pll_rows(contexts: Sequence[Sequence[int]], continuations: Sequence[Sequence[int]], *, cls_id: int,
             sep_id: int, mask_id: int, max_len: int) -> tuple[Rows, np.ndarray]:
    """Pseudo-log-likelihood rows (Salazar et al. 2020): ``[CLS] context continuation [SEP]`` once
    per continuation token, with that token masked and labelled. Returns the rows and, per row,
    the index of the request it belongs to."""
    inputs, labels, owner, truncated = [], [], [], 0
    for i, (ctx, cont) in enumerate(zip(contexts, continuations)):
        if not cont:
            raise ValueError("empty continuation")
        room = max_len - 2 - len(cont)
        if room < 0:
            raise UserError(f"a text of {len(cont)} tokens does not fit the encoder's {max_len} positions "
                            "(with [CLS] and [SEP]); evaluate a model with a larger max_seq_len")
        if len(ctx) > room:
            truncated += 1
            ctx = ctx[len(ctx) - room:]
        base = [cls_id, *ctx, *cont, sep_id]
        first = 1 + len(ctx)
        for j, token in enumerate(cont):
            row = list(base)
            row[first + j] = mask_id
            lab = [IGNORE] * len(base)
            lab[first + j] = token
            inputs.append(row)
            labels.append(lab)
            owner.append(i)
    return Rows.from_lists(inputs, labels, truncated), np.asarray(owner, dtype=np.int64)


def bf16_linears(model):
    """A copy of ``model`` whose linear layers hold bfloat16 weights.

    Under bf16 autocast the forward is the same number for number (autocast would cast these
    weights to bf16 anyway), but the cast is paid once instead of in every batch: on a CPU that
    re-cast is a full read and write of the model per forward. Embeddings and norms stay float32,
    as autocast keeps them; a linear layer sharing its weight with an embedding is left alone.
    """
    import copy

    from torch import nn

    clone = copy.deepcopy(model)
    shared = {id(p) for m in clone.modules() if isinstance(m, nn.Embedding) for p in m.parameters()}
    for m in clone.modules():
        if isinstance(m, nn.Linear) and id(m.weight) not in shared:
            m.to(torch.bfloat16)
    return clone


def target_logprobs(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """log softmax(logits)[target] per row in float32 (0 where the target is IGNORE).

    Half-precision logits are widened a slab of rows at a time: the float32 slab stays in cache
    for the log-softmax passes, instead of a second full-size copy streaming through memory
    (about 3x faster on CPU than ``cross_entropy(logits.float())``).
    """
    if logits.dtype == torch.float32:
        return -F.cross_entropy(logits, targets, ignore_index=IGNORE, reduction="none")
    out = torch.empty(targets.shape, dtype=torch.float32, device=logits.device)
    step = max(1, 2**21 // logits.shape[-1])
    for start in range(0, logits.shape[0], step):
        out[start:start + step] = -F.cross_entropy(logits[start:start + step].float(), targets[start:start + step],
                                                    ignore_index=IGNORE, reduction="none")
    return out


# ------------------------------------------------------------------ the scorer
@dataclass
class Scorer:
    """Scores rows with one ``logits_fn``: summed log-probabilities of each row's labels."""

    logits_fn: LogitsFn
    kind: str                     # "decoder" (causal LM) or "encoder" (masked LM)
    vocab_size: int
    max_len: int
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    precision: str = "fp32"       # fp32, or bf16 autocast around the forward (log-softmax stays fp32)
    batch_tokens: int = 4096      # padded tokens per forward (capped so logits stay <= 256 MiB)
    pad_id: int = 0
    progress: object | None = None  # has begin(description, total_tokens) and advance(tokens_scored)

    @classmethod
    def for_model(cls, model, compile: bool = False, **kwargs) -> "Scorer":
        return cls.for_models([model], compile=compile, **kwargs)

    @classmethod
    def for_models(cls, models, compile: bool = False, **kwargs) -> "Scorer":
        """One model, or an ensemble (mean logits) of models that share a tokenizer."""
        device = next(models[0].parameters()).device
        if kwargs.get("precision") == "bf16" and device.type == "cpu":
            models = [bf16_linears(m) for m in models]
        members = [ModelLogits(m, compile=compile) for m in models]
        fn = members[0] if len(members) == 1 else EnsembleLogits(members)
        return cls.for_logits(fn, device=device, **kwargs)

    @classmethod
    def for_logits(cls, fn, **kwargs) -> "Scorer":
        if kwargs.get("precision", "fp32") not in ("fp32", "bf16"):
            raise UserError(f"precision {kwargs['precision']!r}: choose fp32 or bf16")
        return cls(fn, fn.kind, fn.vocab_size, fn.max_len, **kwargs)

    def _autocast(self):
        if self.precision == "bf16":
            return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def score(self, rows: Rows) -> tuple[np.ndarray, np.ndarray]:
        """(summed log-probability, number of scored tokens) per row, float64 and int64."""
        sums, counts, _ = self._score(rows, greedy=False)
        return sums, counts

    @torch.inference_mode()
    def _score(self, rows: Rows, greedy: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """``score``, and with ``greedy`` how many of each row's labels are the argmax of their logits."""
        n = len(rows)
        sums = np.zeros(n, dtype=np.float64)
        counts = np.zeros(n, dtype=np.int64)
        hits = np.zeros(n, dtype=np.int64) if greedy else None
        if n == 0:
            return sums, counts, hits
        lengths = rows.lengths
        order = np.argsort(-lengths, kind="stable")
        budget = max(1, min(self.batch_tokens, MAX_LOGITS // max(1, self.vocab_size)))
        i = 0
        while i < n:
            longest = int(lengths[order[i]])
            idx = order[i:i + max(1, budget // longest)]
            i += len(idx)
            s, c, h = self._batch(rows, idx, lengths[idx], longest, greedy)
            sums[idx], counts[idx] = s, c
            if greedy:
                hits[idx] = h
            if self.progress is not None:
                self.progress.advance(int(c.sum()))
        return sums, counts, hits

    def _batch(self, rows: Rows, idx: np.ndarray, lens: np.ndarray, width: int, greedy: bool = False):
        steps = np.arange(width)
        valid = steps[None, :] < lens[:, None]
        pos = np.where(valid, rows.offsets[idx][:, None] + steps[None, :], 0)
        x = torch.from_numpy(np.where(valid, rows.inputs[pos], self.pad_id)).to(self.device)
        y = torch.from_numpy(np.where(valid, rows.labels[pos], IGNORE)).to(self.device)
        mask = torch.from_numpy(valid.astype(np.int64)).to(self.device)
        select = y != IGNORE
        counts = select.sum(1)
        n_sel = int(counts.sum())
        if n_sel > 0.75 * y.numel():  # nearly every position scored (sentences): no gather needed
            with self._autocast():
                logits = self.logits_fn(x, mask)
            lp = target_logprobs(logits.flatten(0, 1), y.flatten())
            sums = lp.view(y.shape).double().sum(1)
            hits = ((logits.argmax(-1) == y) & select).sum(1) if greedy else None
        else:  # few positions scored (long contexts, one masked token per row): project only those
            with self._autocast():
                fn_at = getattr(self.logits_fn, "at", None)
                picked = fn_at(x, mask, select) if fn_at is not None else self.logits_fn(x, mask)[select]
            lp = target_logprobs(picked, y[select])
            owner = torch.arange(len(idx), device=y.device).repeat_interleave(counts)
            sums = torch.zeros(len(idx), dtype=torch.float64, device=y.device).index_add_(0, owner, lp.double())
            hits = (torch.zeros(len(idx), dtype=torch.int64, device=y.device)
                    .index_add_(0, owner, (picked.argmax(-1) == y[select]).long()) if greedy else None)
        return sums.cpu().numpy(), counts.cpu().numpy(), (hits.cpu().numpy() if greedy else None)

    # -------------------------------------------------------------- conveniences
    def begin(self, description: str, continuations) -> None:
        """Tell the progress display what comes: one unit per scored token."""
        if self.progress is not None:
            self.progress.begin(description, sum(len(c) for c in continuations))

    def causal(self, contexts, continuations) -> tuple[np.ndarray, int]:
        """Summed log p(continuation | context) per request, and how many were left-truncated."""
        rows = causal_rows(contexts, continuations, self.max_len)
        return self.score(rows)[0], rows.truncated

    def causal_greedy(self, contexts, continuations) -> tuple[np.ndarray, np.ndarray]:
        """Summed log p(continuation | context) per request, and whether greedy decoding would have
        produced the continuation (every token the argmax), as lm-evaluation-harness's ``is_greedy``."""
        sums, counts, hits = self._score(causal_rows(contexts, continuations, self.max_len), greedy=True)
        return sums, hits == counts

    def pll(self, contexts, continuations, *, cls_id: int, sep_id: int, mask_id: int) -> tuple[np.ndarray, int]:
        """Summed pseudo-log-likelihood of each continuation's tokens (context visible, unmasked)."""
        total = np.zeros(len(continuations), dtype=np.float64)
        truncated = 0
        step = 4096  # requests per chunk: PLL rows multiply by the text length, keep memory flat
        for start in range(0, len(continuations), step):
            rows, owner = pll_rows(contexts[start:start + step], continuations[start:start + step], cls_id=cls_id,
                                   sep_id=sep_id, mask_id=mask_id, max_len=self.max_len)
            truncated += rows.truncated
            sums, _ = self.score(rows)
            np.add.at(total, owner + start, sums)
        return total, truncated


def encode_texts(tokenizer, texts: Sequence[str]) -> list[list[int]]:
    """Token ids without the tokenizer's template tokens ([CLS]/[SEP]/BOS are added by the scorer)."""
    return [e.ids for e in tokenizer.encode_batch(list(texts), add_special_tokens=False)]
