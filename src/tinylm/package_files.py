"""Files that ship inside the package: bundled recipes, tokenizer files and the public-domain corpus.

Found through `importlib.resources`, so an installed wheel finds them wherever pip put it, and a
source checkout finds them in `src/tinylm/`. Every runtime file is asked for through
`package_file`; `tests/test_packaging.py` reads the calls from the code and checks that the built
wheel holds each of them.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path


def package_file(*parts: str) -> Path:
    """The path of a file or folder shipped with tinylm (installed as a directory, never as a zip)."""
    return Path(str(files("tinylm").joinpath(*parts)))
