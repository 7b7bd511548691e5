"""Tokenizers: the shipped hub files by name, any tokenizer.json, or trained on the train split.

Everything is a Hugging Face ``tokenizers.Tokenizer`` so a store can keep its tokenizer as one
``tokenizer.json`` and any tool that reads that format (transformers, lm-eval) can use it.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Iterable

from tinylm.errors import UserError
from tinylm.package_files import package_file

_ASSETS = package_file("assets", "tokenizers")
SHIPPED = ("gpt2", "bert-base-uncased", "gpt-neox-20b")
# Hub ids of the very same files, so a recipe written with a hub id needs no download.
_ALIASES = {
    "openai-community/gpt2": "gpt2",
    "google-bert/bert-base-uncased": "bert-base-uncased",
    "EleutherAI/gpt-neox-20b": "gpt-neox-20b",
}
TRAINABLE = ("bpe", "wordpiece")
BPE_SPECIALS = ("<pad>", "<s>", "</s>")  # BabyLlama-2's byte-level BPE
WORDPIECE_SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")  # BERT's
_BYTE_ALPHABET = 256
# Which added token plays which role, first match wins. GPT-2's <|endoftext|> is both BOS and EOS.
_ROLES = {
    "pad": ("<pad>", "[PAD]", "<|padding|>"),
    "bos": ("<s>", "[BOS]", "<|endoftext|>"),
    "eos": ("</s>", "[EOS]", "<|endoftext|>"),
    "unk": ("<unk>", "[UNK]"),
    "cls": ("[CLS]", "<cls>"),
    "sep": ("[SEP]", "<sep>"),
    "mask": ("[MASK]", "<mask>"),
}
_SPEC = re.compile(r"^(bpe|wordpiece):(\d+)(k?)$", re.IGNORECASE)


def load_tokenizer(name_or_path: str | Path):
    """A shipped tokenizer by name (``gpt2``, ``bert-base-uncased``, ``gpt-neox-20b``), a path to a
    ``tokenizer.json`` (or a directory holding one, such as a token store), or a hub id."""
    from tokenizers import Tokenizer

    name = str(name_or_path)
    name = _ALIASES.get(name, name)
    if name in ("gpt2", "gpt-neox-20b"):
        return Tokenizer.from_file(str(_ASSETS / name / "tokenizer.json"))
    if name == "bert-base-uncased":
        return _bert_from_vocab(_ASSETS / name / "vocab.txt", lowercase=True)
    if parse_trainable(name) is not None:
        raise UserError(f"{name!r} is a tokenizer to train, not to load; pass it to `tinylm prepare --tokenizer`")
    path = Path(name).expanduser()
    if path.is_dir():
        path = path / "tokenizer.json"
    if path.is_file():
        try:
            return Tokenizer.from_file(str(path))
        except Exception as e:  # tokenizers raises a bare Exception on malformed JSON
            raise UserError(f"{path} is not a valid tokenizer.json ({e}); point at a Hugging Face tokenizer file") from e
    if "/" in name and not Path(name).exists() and not name.startswith((".", "/", "~")):
        try:  # a hub id: downloads only because the user asked for it by name
            return Tokenizer.from_pretrained(name)
        except Exception as e:
            raise UserError(f"cannot load tokenizer {name!r} from the Hugging Face hub ({e}); "
                            f"use one of {', '.join(SHIPPED)} or a path to a tokenizer.json") from e
    raise UserError(f"unknown tokenizer {name!r}; use one of {', '.join(SHIPPED)}, bpe:N or wordpiece:N "
                    "(trained on the train split), or a path to a tokenizer.json")


def _bert_from_vocab(vocab: Path, lowercase: bool):
    """BERT's tokenizer rebuilt from vocab.txt exactly as ``BertTokenizerFast`` configures it."""
    from tokenizers import Tokenizer, models

    tok = Tokenizer(models.WordPiece.from_file(str(vocab), unk_token="[UNK]"))
    _make_bert_like(tok, lowercase)
    return tok


def _make_bert_like(tok, lowercase: bool) -> None:
    from tokenizers import decoders, normalizers, pre_tokenizers, processors

    tok.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True, lowercase=lowercase)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece(prefix="##")
    tok.add_special_tokens(list(WORDPIECE_SPECIALS))
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", cls), ("[SEP]", sep)]
    )


def parse_trainable(spec: str) -> tuple[str, int] | None:
    """``"bpe:16000"`` -> ("bpe", 16000); ``"wordpiece:8k"`` -> ("wordpiece", 8000); else None."""
    m = _SPEC.match(str(spec).strip())
    if not m:
        if str(spec).lower().startswith(tuple(k + ":" for k in TRAINABLE)):
            raise UserError(f"malformed tokenizer spec {spec!r}; write bpe:N or wordpiece:N with N a whole number, e.g. bpe:16000")
        return None
    size = int(m.group(2)) * (1000 if m.group(3) else 1)
    kind = m.group(1).lower()
    check_trainable_size(kind, size)
    return kind, size


def check_trainable_size(kind: str, size: int) -> None:
    """A vocabulary must hold its special tokens (and, for byte-level BPE, all 256 bytes)."""
    if kind == "bpe":
        need = len(BPE_SPECIALS) + _BYTE_ALPHABET
        if size < need:
            raise UserError(f"bpe:{size} is too small: a byte-level BPE holds its {len(BPE_SPECIALS)} special tokens "
                            f"and the 256-byte alphabet; use bpe:{need} or more (BabyLlama-2 uses bpe:16000)")
    elif size <= len(WORDPIECE_SPECIALS):
        raise UserError(f"wordpiece:{size} is too small for its {len(WORDPIECE_SPECIALS)} special tokens "
                        f"({' '.join(WORDPIECE_SPECIALS)}); use a few thousand, e.g. wordpiece:8000")


def train_tokenizer(spec: str, texts: Iterable[str], *, min_frequency: int = 2):
    """Train ``bpe:N`` (byte-level BPE with ``<pad> <s> </s>``, as BabyLlama-2) or ``wordpiece:N``
    (BERT-style, uncased, with ``[PAD] [UNK] [CLS] [SEP] [MASK]``) on ``texts``.

    The caller is responsible for passing the train split only. No prefix space is added, so
    ``decode(encode(text)) == text`` holds for byte-level BPE (BabyLlama-2 added one; it only
    changes how a text's first word is split).
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    parsed = parse_trainable(spec)
    if parsed is None:
        raise UserError(f"cannot train {spec!r}; write bpe:N or wordpiece:N")
    kind, size = parsed
    if kind == "bpe":
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=size, min_frequency=min_frequency, special_tokens=list(BPE_SPECIALS),
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
        )
        tok.train_from_iterator(texts, trainer)
        return tok
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    _make_bert_like(tok, lowercase=True)
    trainer = trainers.WordPieceTrainer(
        vocab_size=size, min_frequency=min_frequency, special_tokens=list(WORDPIECE_SPECIALS), show_progress=False
    )
    tok.train_from_iterator(texts, trainer)
    _make_bert_like(tok, lowercase=True)  # the template needs the final ids of [CLS] and [SEP]
    return tok


def special_ids(tok) -> dict[str, int]:
    """Roles of the tokenizer's special tokens, e.g. {"pad": 0, "bos": 1, "eos": 2}; only those present."""
    added = {t.content: i for i, t in tok.get_added_tokens_decoder().items() if t.special}
    out = {}
    for role, names in _ROLES.items():
        for name in names:
            if name in added:
                out[role] = added[name]
                break
    return out


def vocab_size(tok) -> int:
    """Number of ids the model must embed: the largest id plus one (added tokens included)."""
    return max(tok.get_vocab(with_added_tokens=True).values()) + 1


def tokenizer_sha256(tok) -> str:
    """Hash of the tokenizer's JSON, which is what the store keeps; two stores with the same hash
    tokenised identically."""
    return hashlib.sha256(tok.to_str().encode("utf-8")).hexdigest()
