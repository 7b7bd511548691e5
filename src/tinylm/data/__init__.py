"""Text -> documents -> tokenizer -> token store (.bin memmap) -> batches.

Names are imported lazily: worker processes and CLI start-up import only what they use (the
samplers pull in torch; tokenising a corpus does not need it).
"""

from __future__ import annotations

from tinylm.lazy_exports import lazy_exports

_EXPORTS = {
    "TokenStore": "tinylm.data.store",
    "prepare_store": "tinylm.data.prepare",
    "PrepareProgress": "tinylm.data.prepare",
    "load_tokenizer": "tinylm.data.tokenizer",
    "train_tokenizer": "tinylm.data.tokenizer",
    "special_ids": "tinylm.data.tokenizer",
    "RandomWindows": "tinylm.data.samplers",
    "RandomShiftChunks": "tinylm.data.samplers",
    "SequentialEpochs": "tinylm.data.samplers",
    "fixed_windows": "tinylm.data.samplers",
    "PaddedDocuments": "tinylm.data.padded_documents",
    "MLMCollator": "tinylm.data.mlm",
    "nested_subsets": "tinylm.data.subsets",
    "write_subset": "tinylm.data.subsets",
    "default_corpus_files": "tinylm.data.sources",
    "DEFAULT_CORPUS": "tinylm.data.sources",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports("tinylm.data", _EXPORTS)
