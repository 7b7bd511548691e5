"""`tinylm export RUN --babylm OUT`: a run as the BabyLM 2025 pipeline evaluates it, revision by revision.

The pipeline loads a model's intermediate checkpoints by revision name, `chck_1M` ... `chck_10M` ...
`chck_100M` (babylm/evaluation-pipeline-2025, commit bf55c11 of 2025-08-19: README "Submission
Requirements", `eval_zero_shot_fast_all_revisions.sh`, `evaluation_pipeline/collate_preds.py`'s
`STRICT_SMALL_FAST_REVISIONS`), and the final model as `main`. This writes

    OUT/chck_1M/, OUT/chck_2M/, ..., OUT/main/   transformers model directories (+ tokenizer), each checked:
                                                 its logits are ours (`tinylm.eval.export.verify_export`)
    OUT/README.md                                the model card (`tinylm.runs.babylm_card`)
    OUT/results/<OUT name>/<revision>/zero_shot/<backend>/blimp/<dataset>/predictions.json
                                                 with --blimp: the pipeline's prediction files, from our scores

from the run's words checkpoints (`checkpoint: {words: ...}` in its recipe). A folder is pushed as the
branch of that name of a hub repository, or handed to the pipeline as `--model_path_or_name OUT/chck_1M`.
Everything is checked before anything is written, and OUT appears whole or not at all.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from tinylm.data.words_seen import SCALE
from tinylm.errors import UserError
from tinylm.rundir.checkpoints import is_complete, latest_checkpoint, state_summary


@dataclass
class Revision:
    name: str           # chck_1M, ..., main
    checkpoint: Path
    step: int
    words: float | None  # words seen when it was saved
    tokens: int
    flops: float


def plan(run_dir) -> list[Revision]:
    """The revisions of a run: one per words checkpoint, then `main` (the latest checkpoint). Reads only."""
    run_dir = Path(run_dir).expanduser()
    if not (run_dir / "config.yaml").is_file() or not (run_dir / "checkpoints").is_dir():
        raise UserError(f"{run_dir} is not a run directory (no config.yaml and checkpoints/): give the --out of a "
                        "`tinylm train` run")
    final = latest_checkpoint(run_dir)
    if final is None:
        raise UserError(f"{run_dir} holds no complete checkpoint: resume the run (`tinylm train --out {run_dir} "
                        "--resume`) to write one")
    table = state_summary(final).get("word_checkpoints") or {}
    if not table:
        raise UserError(f"{run_dir} has no words checkpoints for BabyLM's chck_*M revisions: train it with "
                        "`checkpoint: {words: babylm}` (or a list, e.g. [1M, 2M, 10M]) in its recipe")
    revisions = []
    for name, entry in sorted(table.items(), key=lambda kv: kv[1]["words"]):
        ckpt = run_dir / "checkpoints" / f"step-{int(entry['step']):08d}"
        if not is_complete(ckpt):
            raise UserError(f"{ckpt}, the run's {name} checkpoint, is missing or incomplete: restore it, or train "
                            "the run again")
        revisions.append(_revision(name, ckpt, entry.get("words_seen")))
    final_state = state_summary(final)
    seen = final_state.get("batches", {}).get("words_seen")
    revisions.append(_revision("main", final, None if seen is None else seen / SCALE))
    return revisions


def _revision(name: str, ckpt: Path, words) -> Revision:
    counters = state_summary(ckpt)["counters"]
    return Revision(name, ckpt, int(counters["step"]), words, int(counters["tokens"]), float(counters["flops"]))


def export_babylm(run_dir, out, blimp: list[tuple[str, list]] | None = None, force: bool = False) -> dict:
    """Write every revision of `run_dir` under `out` (see the module docstring); returns what was written.

    `blimp`: (dataset name, minimal pairs) to score each revision on, written as the pipeline's predictions.
    """
    from tinylm.eval.export import export_hf
    from tinylm.loading import load_model
    from tinylm.runs.babylm_card import model_card

    run_dir, out = Path(run_dir).expanduser(), Path(out).expanduser()
    revisions = plan(run_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not force:
        raise UserError(f"{out} already exists: choose another --babylm folder, or pass --force to replace it")
    tmp = out.with_name(f".{out.name}.tmp-babylm")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    written, predictions = [], {}
    try:
        for rev in revisions:
            loaded = load_model(rev.checkpoint)
            result = export_hf(loaded, tmp / rev.name)
            written.append({"revision": rev.name, "step": rev.step, "words": rev.words, "tokens": rev.tokens,
                            "max_abs_logit_diff": result["max_abs_logit_diff"]})
            if blimp:
                predictions[rev.name] = _predict(loaded, blimp, tmp / "results", out.name, rev.name)
        (tmp / "README.md").write_text(model_card(run_dir, revisions, out.name, predictions), encoding="utf-8")
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {"out": str(out), "revisions": written, "predictions": predictions}


def _predict(loaded, blimp, results: Path, model: str, revision: str) -> dict:
    """The pipeline's predictions.json of each BLiMP dataset for one revision; returns accuracy per dataset."""
    from tinylm.eval.babylm_predictions import predictions_path, score_predictions, write_predictions
    from tinylm.eval.hf_import import special_ids_for
    from tinylm.eval.scoring import Scorer

    specials = special_ids_for(loaded)
    scorer = Scorer.for_models([loaded.model.eval()], pad_id=int(specials.get("pad", 0)))
    accuracy = {}
    for dataset, pairs in blimp:
        objects = score_predictions(scorer, loaded.tokenizer, specials, pairs)
        write_predictions(predictions_path(results, model, revision, loaded.model.config.kind, dataset), objects)
        per_uid = {uid: sum(p["pred"] == good for p, good in zip(v["predictions"], _goods(pairs, uid))) / len(v["predictions"])
                   for uid, v in objects.items()}
        accuracy[dataset] = sum(per_uid.values()) / len(per_uid)
    return accuracy


def _goods(pairs, uid: str) -> list[str]:
    return [p.good for p in pairs if p.paradigm == uid]
