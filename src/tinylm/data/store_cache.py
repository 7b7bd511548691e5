"""Where a recipe's `sources:` are prepared: one token store in the cache per content, shared by every run.

The key is what makes the store: each source's identity (its path and every file's size and mtime,
or the string itself for a built-in corpus or a hub name), the tokenizer, what a document is, the
validation share and the split's seed. The split's seed is `data.split_seed`, not the data-order
`data.seed`: runs of different seeds must share one store, hence one validation set. Training
prepares the store here; evaluation asks the same question to tell the run's own store.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from tinylm.cache import cache_dir


def source_paths(data) -> list[str]:
    """The `data.sources` of a recipe with `~` and `$VARS` expanded."""
    return [os.path.expandvars(os.path.expanduser(s)) for s in data.sources]


def sources_store_path(data) -> Path:
    """The cache folder of a `sources:` recipe's store (`data`: the recipe's data section).

    The key's name for the split seed stays "seed" so existing caches still hit.
    """
    key = json.dumps({"sources": [_fingerprint(s) for s in source_paths(data)],
                      "tokenizer": data.tokenizer, "docs": data.docs, "val_fraction": data.val_fraction,
                      "seed": data.split_seed})
    return cache_dir() / "stores" / hashlib.sha256(key.encode()).hexdigest()[:16]


def _fingerprint(source: str) -> list:
    """A source's identity for the store cache: its path and every file's size and mtime."""
    path = Path(source)
    if not path.exists():  # a built-in corpus, a glob or a hub name: the string itself
        return [source]
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    return [str(path.resolve())] + [[str(f), f.stat().st_size, f.stat().st_mtime_ns] for f in files]
