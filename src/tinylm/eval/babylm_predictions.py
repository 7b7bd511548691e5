"""BLiMP predictions in the BabyLM 2025 pipeline's own format, from tinylm's BLiMP scoring.

The pipeline (babylm/evaluation-pipeline-2025, `evaluation_pipeline/sentence_zero_shot/run.py` and
`compute_results.py`, commit bf55c11 of 2025-08-19) writes, with `--save_predictions`,

    results/<model>/<revision>/zero_shot/<backend>/blimp/<dataset>/predictions.json

holding `{UID: {"predictions": [{"id": "<UID>_<i>", "pred": <the sentence chosen>}, ...]}}`: per
paradigm (`UID`, or the file's name for the supplement files, which have none), the i-th pair of that
paradigm in file order, and the sentence with the higher score (argmax over [good, bad]: a tie goes
to the good one). `collate_preds.py` reads exactly these files to build a submission, so writing them
from our scores lets a tinylm model be submitted without running the pipeline's own scorer.
tinylm's scoring is the pipeline's (see `tinylm.eval.minimal_pairs`); only the file is assembled here.
"""

from __future__ import annotations

import json
from pathlib import Path

from tinylm.eval.minimal_pairs import MinimalPair, sentence_logprobs

BACKENDS = {"decoder": "causal", "encoder": "mlm"}  # the pipeline's --backend for each kind of model


def predictions(pairs: list[MinimalPair], good_scores, bad_scores) -> dict:
    """The pipeline's predictions.json object for pairs and their sentences' scores."""
    out: dict[str, dict] = {}
    for pair, good, bad in zip(pairs, good_scores, bad_scores):
        items = out.setdefault(pair.paradigm, {"predictions": []})["predictions"]
        items.append({"id": f"{pair.paradigm}_{len(items)}", "pred": pair.good if good >= bad else pair.bad})
    return out


def score_predictions(scorer, tokenizer, special_ids: dict, pairs: list[MinimalPair]) -> dict:
    """Score every pair (as `evaluate_minimal_pairs` does) and return the pipeline's predictions object."""
    scores, _ = sentence_logprobs(scorer, tokenizer, special_ids, [p.good for p in pairs] + [p.bad for p in pairs],
                                  description="BLiMP")
    return predictions(pairs, scores[:len(pairs)], scores[len(pairs):])


def predictions_path(results: Path, model: str, revision: str, kind: str, dataset: str) -> Path:
    """Where the pipeline puts a dataset's predictions (what `collate_preds.py` reads)."""
    return Path(results) / model / revision / "zero_shot" / BACKENDS[kind] / "blimp" / dataset / "predictions.json"


def write_predictions(path: Path, objects: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(objects), encoding="utf-8")
