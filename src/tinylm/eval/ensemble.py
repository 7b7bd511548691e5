"""Direct ensembles: several models that share a tokenizer, read as one model whose logits are the
mean of theirs.

BabyLlama-2 compares its distilled students with the "direct ensemble" of their teachers (softmax of
the averaged logits), and its distillation target is that same mean. So one module serves both:
``tinylm eval --ensemble RUN1 RUN2 ...`` evaluates a ``MeanLogits`` like any model (validation loss
through the training loop's own ``evaluate``), and the ``distill`` method uses one as its teacher.
Averaging *logits* (not probabilities) is the paper's choice; the softmax comes after.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from types import SimpleNamespace

import torch
from torch import nn

from tinylm.errors import UserError


class MeanLogits(nn.Module):
    """A model whose logits are the float32 mean of its members' logits (members must share a vocabulary)."""

    def __init__(self, models, names=None):
        super().__init__()
        if not models:
            raise UserError("an ensemble needs at least one model")
        names = list(names or [f"member {i + 1}" for i in range(len(models))])
        first = models[0].config
        for name, m in zip(names[1:], models[1:]):
            c = m.config
            if c.kind != first.kind or c.vocab_size != first.vocab_size:
                raise UserError(f"{name} is a {c.kind} with a vocabulary of {c.vocab_size}, but {names[0]} is a "
                                f"{first.kind} with {first.vocab_size}: ensemble models of one kind trained with "
                                "the same tokenizer")
        self.members = nn.ModuleList(models)
        # What evaluation reads from a model's config (validation windows, scorer limits, reports).
        self.config = SimpleNamespace(kind=first.kind, vocab_size=int(first.vocab_size),
                                      max_seq_len=min(int(m.config.max_seq_len) for m in models),
                                      flavour="+".join(sorted({m.config.flavour for m in models})))

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        total = self.members[0](input_ids, attention_mask).float()
        if len(self.members) == 1:
            return total
        for m in self.members[1:]:
            total = total + m(input_ids, attention_mask).float()
        return total / len(self.members)


def file_sha256(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def same_tokenizer(a, b, sha_b: str | None = None) -> bool:
    """Whether two tokenizer.json files give ids the same meaning: the same bytes, or failing that the
    same vocabulary (token -> id, added tokens included); a tokenizer re-saved by another library
    version differs in bytes only."""
    if file_sha256(a) == (sha_b or file_sha256(b)):
        return True
    from tokenizers import Tokenizer

    return (Tokenizer.from_file(str(a)).get_vocab(with_added_tokens=True)
            == Tokenizer.from_file(str(b)).get_vocab(with_added_tokens=True))


def load_members(paths, device="cpu", who: str = "ensemble member") -> list:
    """``LoadedModel`` of every path (run, checkpoint or transformers directory), all with the first's
    tokenizer; a missing path or another tokenizer is a one-line ``UserError`` naming the member."""
    from tinylm.eval.hf_import import load_any

    loaded = []
    for raw in paths:
        path = Path(raw).expanduser()
        if not path.exists():
            raise UserError(f"{who} {raw} does not exist: give a tinylm run directory, one of its checkpoints, "
                            "or a transformers model directory")
        member = load_any(path, device=str(device))
        if loaded and not same_tokenizer(member.tokenizer_path, loaded[0].tokenizer_path):
            raise UserError(f"{who} {raw} was trained with another tokenizer than {paths[0]} "
                            f"({member.tokenizer_name or member.tokenizer_path} vs "
                            f"{loaded[0].tokenizer_name or loaded[0].tokenizer_path}): use models trained on "
                            "one tokenizer")
        loaded.append(member)
    return loaded


def ensemble_of(loaded) -> MeanLogits:
    return MeanLogits([m.model.eval() for m in loaded], names=[str(m.checkpoint) for m in loaded]).eval()
