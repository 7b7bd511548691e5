"""A token store on disk: ``<split>.bin`` token ids, document offsets, ``meta.json``, ``tokenizer.json``.

Token files are raw little-endian uint16/uint32 read through ``np.memmap``, so a store of any size
opens instantly and costs no memory until a sampler touches it.
"""

from __future__ import annotations

import json
from functools import cached_property
from pathlib import Path

import numpy as np

from tinylm.errors import UserError

STORE_FORMAT = "tinylm-token-store"
STORE_VERSION = 1
_FIX = "re-create it with `tinylm prepare SOURCES --tokenizer NAME --out DIR`"


class TokenStore:
    """An opened, validated token store. Use ``TokenStore.open(path)``."""

    def __init__(self, path: Path, meta: dict):
        self.path = Path(path)
        self.meta = meta
        self.vocab_size: int = int(meta["vocab_size"])
        self.dtype = np.dtype(meta["dtype"]).newbyteorder("<")
        self.special_ids: dict[str, int] = {k: int(v) for k, v in meta.get("special_ids", {}).items()}
        self._memmaps: dict[str, np.ndarray] = {}

    @classmethod
    def open(cls, path) -> "TokenStore":
        """Open and check a store: meta.json readable, every file present with the size meta.json says."""
        path = Path(path).expanduser()
        meta_path = path / "meta.json"
        if not path.is_dir():
            raise UserError(f"token store {path} does not exist; create it with "
                            f"`tinylm prepare SOURCES --tokenizer NAME --out {path}`")
        if not meta_path.is_file():
            raise UserError(f"{path} is not a token store (no meta.json); {_FIX}")
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise UserError(f"{meta_path} is corrupt ({e}); {_FIX}") from e
        if not isinstance(meta, dict) or meta.get("format") != STORE_FORMAT:
            raise UserError(f"{meta_path} is not tinylm token-store metadata; {_FIX}")
        if meta.get("version", 0) > STORE_VERSION:
            raise UserError(f"{path} was written by a newer tinylm (store version {meta.get('version')}); "
                            "upgrade tinylm or re-create the store")
        try:
            store = cls(path, meta)
            splits = meta["splits"]
            for name, info in splits.items():
                _check_split(path, name, info, store.dtype.itemsize)
        except (KeyError, TypeError, ValueError) as e:
            raise UserError(f"{meta_path} is incomplete or corrupt ({type(e).__name__}: {e}); {_FIX}") from e
        tokenizer = path / meta["tokenizer"].get("file", "tokenizer.json")
        if not tokenizer.is_file():
            raise UserError(f"{path} has no tokenizer.json; {_FIX}")
        expected = meta["tokenizer"].get("sha256")
        if expected and _sha256(tokenizer) != expected:  # a millisecond: the ids mean nothing with another one
            raise UserError(f"{tokenizer} does not match the SHA-256 meta.json records for it (changed or damaged "
                            f"since the store was prepared); {_FIX}")
        return store

    @property
    def splits(self) -> list[str]:
        return list(self.meta["splits"])

    @property
    def separator_id(self) -> int | None:
        """The token written after every document (EOS, or [SEP] for BERT-style tokenizers), if any."""
        sep = self.meta.get("separator", {}).get("token_id")
        return None if sep is None else int(sep)

    @cached_property
    def tokenizer(self):
        """The store's own tokenizer (``tokenizers.Tokenizer``), loaded on first use."""
        from tokenizers import Tokenizer

        path = self.path / self.meta["tokenizer"].get("file", "tokenizer.json")
        try:
            return Tokenizer.from_file(str(path))
        except Exception as e:  # tokenizers raises a bare Exception for a torn or foreign file
            raise UserError(f"{path} is not a readable tokenizer ({str(e).splitlines()[0][:120]}); {_FIX}") from e

    def _info(self, name: str) -> dict:
        splits = self.meta["splits"]
        if name not in splits:
            hint = " (prepare with --test-fraction F)" if name == "test" else ""
            raise UserError(f"token store {self.path} has no {name!r} split{hint}; it has {', '.join(splits)}")
        return splits[name]

    def split(self, name: str) -> np.ndarray:
        """Token ids of a split as a read-only memory map (a plain empty array when the split is empty)."""
        if name not in self._memmaps:
            info = self._info(name)
            n = int(info["tokens"])
            if n == 0:
                self._memmaps[name] = np.zeros(0, dtype=self.dtype)
            else:
                self._memmaps[name] = np.memmap(self.path / info["file"], dtype=self.dtype, mode="r", shape=(n,))
        return self._memmaps[name]

    def documents(self, name: str) -> np.ndarray:
        """Document offsets of a split: document i is ``split(name)[offsets[i]:offsets[i+1]]``.

        Each document includes its trailing separator when ``separator_id`` is set.
        """
        return np.load(self.path / self._info(name)["documents_file"], mmap_mode="r")

    def has_words(self, name: str) -> bool:
        """Whether the store counts words per document (stores written before it did not)."""
        return "words_file" in self._info(name)

    def document_words(self, name: str) -> np.ndarray:
        """Whitespace words per document (``len(text.split())`` of the cleaned document: BabyLM's count)."""
        info = self._info(name)
        if "words_file" not in info:
            raise UserError(f"token store {self.path} does not count words (written by an older tinylm): {_FIX} "
                            "to count them")
        return np.load(self.path / info["words_file"], mmap_mode="r")

    def num_words(self, name: str) -> int | None:
        """Whitespace words of a split, or None when the store does not count them."""
        info = self._info(name)
        return int(info["words"]) if "words_file" in info and "words" in info else None

    def num_tokens(self, name: str) -> int:
        return int(self._info(name)["tokens"])

    def __repr__(self) -> str:
        sizes = ", ".join(f"{k}={v['tokens']:,}" for k, v in self.meta["splits"].items())
        return f"TokenStore({str(self.path)!r}, tokenizer={self.meta['tokenizer']['name']!r}, tokens: {sizes})"


def _sha256(path: Path) -> str:
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _check_split(path: Path, name: str, info: dict, itemsize: int) -> None:
    for key in ("file", "documents_file", "words_file"):  # names of files in the store, never paths out of it
        if key == "words_file" and key not in info:  # an older store, without word counts: it still loads
            continue
        if not isinstance(info[key], str) or Path(info[key]).name != info[key] or info[key] in ("", ".", ".."):
            raise UserError(f"{path / 'meta.json'} names {info[key]!r} as the {name} split's {key}, not a file of "
                            f"the store; {_FIX}")
    bin_path = path / info["file"]
    expected = int(info["tokens"]) * itemsize
    if not bin_path.is_file():
        raise UserError(f"{path} is missing {info['file']}; {_FIX}")
    actual = bin_path.stat().st_size
    if actual != expected:
        raise UserError(f"{bin_path} has {actual:,} bytes but meta.json says {expected:,} "
                        f"({info['tokens']:,} tokens); the store is corrupt, {_FIX}")
    for key in ("documents_file", "words_file"):
        if key in info and not (path / info[key]).is_file():
            raise UserError(f"{path} is missing {info[key]}; {_FIX}")
    _check_documents(path, info)


def _load_array(file: Path) -> np.ndarray:
    try:
        array = np.load(file, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:  # truncated, foreign, or an object array (a pickle)
        raise UserError(f"{file} is not a readable array ({str(e).splitlines()[0] if str(e) else type(e).__name__}); "
                        f"the store is corrupt, {_FIX}") from e
    if array.ndim != 1 or array.dtype.kind not in "iu":
        raise UserError(f"{file} holds a {array.dtype} array of shape {array.shape}, not a list of integers; "
                        f"the store is corrupt, {_FIX}")
    return array


def _check_documents(path: Path, info: dict) -> None:
    """The document boundaries: offsets from 0 to the split's token count, never decreasing, one more
    than meta.json's document count; a word count per document. Garbage here would cut windows and
    subsets in the wrong places without a word, so it is refused (one pass over the offsets: cheap)."""
    tokens, documents = int(info["tokens"]), int(info.get("documents", -1))
    if tokens < 0 or documents < 0 and "documents" in info:
        raise UserError(f"{path / 'meta.json'} gives {tokens} tokens and {documents} documents for a split; "
                        f"the store is corrupt, {_FIX}")
    offsets_file = path / info["documents_file"]
    offsets = _load_array(offsets_file)
    problem = None
    if "documents" in info and len(offsets) != documents + 1:
        problem = f"{len(offsets):,} offsets for meta.json's {documents:,} documents (want one more)"
    elif len(offsets) == 0 or int(offsets[0]) != 0 or int(offsets[-1]) != tokens:
        ends = f"{int(offsets[0])}..{int(offsets[-1])}" if len(offsets) else "none"
        problem = f"offsets {ends}, not 0..{tokens:,} (the split's tokens)"
    elif len(offsets) > 1 and bool((np.diff(offsets) < 0).any()):
        problem = "offsets that decrease"
    if problem:
        raise UserError(f"{offsets_file} holds garbage document boundaries ({problem}); {_FIX}")
    if "words_file" not in info:
        return
    words_file = path / info["words_file"]
    if len(_load_array(words_file)) != len(offsets) - 1:
        raise UserError(f"{words_file} has {len(_load_array(words_file)):,} word counts for {len(offsets) - 1:,} "
                        f"documents; the store is corrupt, {_FIX}")
