"""Hugging Face ``datasets`` as a source: ``hf:NAME[:CONFIG][@SPLIT]``.

``datasets`` is optional (``pip install 'tinylm[datasets]'``) and imported only here. NAME may be a
hub dataset (downloaded by ``datasets`` only because the user named it) or a local directory or
builder that ``datasets.load_dataset`` understands, which is how the tests run offline.
"""

from __future__ import annotations

from typing import Iterator

from tinylm.errors import UserError
from tinylm.optional import require

_BATCH = 1000


def parse_hf_spec(spec: str) -> tuple[str, str | None, str]:
    """``hf:NAME[:CONFIG][@SPLIT]`` -> (name, config, split); the split defaults to ``train``."""
    body = spec[len("hf:"):]
    body, _, split = body.partition("@")
    name, _, config = body.partition(":")
    if not name:
        raise UserError(f"{spec!r} names no dataset; write hf:NAME[:CONFIG][@SPLIT], e.g. hf:roneneldan/TinyStories@validation")
    return name, config or None, split or "train"


def iter_hf_records(spec: str, text_field: str | None, reader) -> Iterator[str]:
    """Yield the text field of every record; sets ``reader.fingerprint`` to the dataset's fingerprint."""
    datasets = require("datasets", f"reading {spec}")
    name, config, split = parse_hf_spec(spec)
    try:
        ds = datasets.load_dataset(name, config, split=split)
    except Exception as e:  # datasets raises many types (not found, no network, bad config)
        raise UserError(f"cannot load Hugging Face dataset {spec}: {str(e).splitlines()[0] if str(e) else type(e).__name__}; "
                        "check the name, config and split") from e
    field = text_field or "text"
    if field not in ds.column_names:
        raise UserError(f"{spec} has no column {field!r} (columns: {', '.join(ds.column_names)}); "
                        "pass --text-field with the column that holds the text")
    for batch in ds.iter(batch_size=_BATCH):
        for value in batch[field]:
            if value is not None and not isinstance(value, str):
                raise UserError(f"{spec}: column {field!r} holds {type(value).__name__}, not text; "
                                "pass --text-field naming a text column")
            yield value or ""
    reader.fingerprint = getattr(ds, "_fingerprint", None)
