"""`TINYLM_CACHE`: where tinylm keeps what it can always compute again.

Token stores prepared from a recipe's `sources:`, tokenizer.json files written for transformers
models that ship only slow tokenizer files, and measured peak FLOPs live here; deleting the folder
costs time, never a result. One function, so every layer that caches agrees on the place.
"""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """`$TINYLM_CACHE`, else `~/.cache/tinylm`."""
    return Path(os.environ.get("TINYLM_CACHE", Path.home() / ".cache" / "tinylm"))
