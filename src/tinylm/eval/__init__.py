"""Evaluation that matches the reference pipelines: BLiMP (minimal pairs), HellaSwag (multiple
choice), validation loss on the training loop's own windows, and export/import to transformers.

Every zero-shot score goes through ``Scorer`` (``scoring.py``), which sees a model only as
``logits_fn(input_ids, attention_mask)``; an ensemble is one more such function. Names are
imported lazily so ``tinylm --help`` stays fast.
"""

from __future__ import annotations

from tinylm.lazy_exports import lazy_exports

_EXPORTS = {
    "Scorer": "tinylm.eval.scoring",
    "ModelLogits": "tinylm.eval.scoring",
    "EnsembleLogits": "tinylm.eval.scoring",
    "MeanLogits": "tinylm.eval.ensemble",
    "MinimalPair": "tinylm.eval.minimal_pairs",
    "read_minimal_pairs": "tinylm.eval.minimal_pairs",
    "limit_per_paradigm": "tinylm.eval.minimal_pairs",
    "sentence_logprobs": "tinylm.eval.minimal_pairs",
    "evaluate_minimal_pairs": "tinylm.eval.minimal_pairs",
    "start_token": "tinylm.eval.minimal_pairs",
    "ChoiceItem": "tinylm.eval.multiple_choice",
    "read_hellaswag": "tinylm.eval.multiple_choice",
    "evaluate_hellaswag": "tinylm.eval.multiple_choice",
    "validation_loss": "tinylm.eval.validation",
    "load_any": "tinylm.eval.hf_import",
    "export_hf": "tinylm.eval.export",
    "correlate": "tinylm.eval.compare",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports("tinylm.eval", _EXPORTS)
