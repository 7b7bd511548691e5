"""Per-item results: what each BLiMP pair and HellaSwag item scored, beside the task's summary.

An accuracy alone cannot say whether two models differ: two runs at 0.71 and 0.73 on the same 1,000
pairs may disagree on 5 pairs or on 300. A paired comparison (``tinylm compare A B --paired``,
``eval/paired.py``) needs each item's verdict from both, matched by a stable id. So ``tinylm eval``
writes ``<name>.items.jsonl`` beside ``<name>.json``, one line per item:

* minimal pairs: ``id`` = ``<paradigm>_<index>`` (the pair's place within its paradigm, file order,
  as BLiMP's own pairID; the id the BabyLM pipeline's predictions.json gives it), ``paradigm`` (the
  file's UID), ``field`` (as ``<name>.json`` groups it:
  BLiMP's ``syntax_semantics`` spelled ``syntax/semantics``, as BabyLM does), ``linguistics_term``,
  ``logprob_good``, ``logprob_bad`` (PLL for encoders), ``prediction`` ("good"/"bad"), ``correct``;
* multiple choice (HellaSwag): ``id`` = the dataset's ``ind`` (JSONL) or the item's place in the
  file (text format), ``gold``, ``logprobs`` (one per ending), ``ending_chars`` (acc_norm's divisor),
  ``ending_tokens``, ``prediction`` and ``prediction_norm`` (argmax indices), ``correct`` (acc) and
  ``correct_norm`` (acc_norm).

The file is written whole or not at all (a temporary file renamed over it), so a reader never sees
half of one.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tinylm.errors import UserError

SUFFIX = ".items.jsonl"
# metric name -> the record key holding the item's verdict, by kind of task
METRICS = {"minimal_pairs": {"accuracy": "correct"},
           "multiple_choice": {"acc": "correct", "acc_norm": "correct_norm"},
           "items": {"accuracy": "correct"}}


def _unique(ids: list[str]) -> list[str]:
    """The ids, a repeated one (two files with one UID, a JSONL with repeated `ind`) made unique by
    its occurrence (`x`, `x#2`, ...), so that every record can be matched."""
    seen: dict[str, int] = {}
    out = []
    for i in ids:
        seen[i] = seen.get(i, 0) + 1
        out.append(i if seen[i] == 1 else f"{i}#{seen[i]}")
    return out


def minimal_pair_records(pairs, good: np.ndarray, bad: np.ndarray) -> list[dict]:
    """One record per pair (see the module docstring); a tie counts as correct, as in the accuracy."""
    ids = _unique([f"{p.paradigm}_{p.index}" for p in pairs])
    return [{"id": i, "paradigm": p.paradigm, "field": p.field, "linguistics_term": p.term,
             "logprob_good": g, "logprob_bad": b, "prediction": "good" if g >= b else "bad", "correct": g >= b}
            for i, p, g, b in zip(ids, pairs, np.asarray(good, dtype=float).tolist(),
                                  np.asarray(bad, dtype=float).tolist())]


def choice_records(items, logprobs: np.ndarray, chars: np.ndarray, tokens: list[int]) -> list[dict]:
    """One record per multiple-choice item; ``logprobs`` and ``chars`` are (items, endings), ``tokens``
    the continuation lengths in item-major order."""
    n_end = logprobs.shape[1]
    pred, pred_norm = logprobs.argmax(1).tolist(), (logprobs / chars).argmax(1).tolist()
    ids = _unique([str(it.index) for it in items])
    return [{"id": ids[k], "gold": it.gold, "logprobs": logprobs[k].tolist(), "ending_chars": chars[k].astype(int).tolist(),
             "ending_tokens": tokens[k * n_end:(k + 1) * n_end], "prediction": pred[k], "prediction_norm": pred_norm[k],
             "correct": pred[k] == it.gold, "correct_norm": pred_norm[k] == it.gold}
            for k, it in enumerate(items)]


def write_items(directory: Path, name: str, records: list[dict]) -> Path:
    from tinylm.rundir.serialize import write_jsonl

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}{SUFFIX}"
    write_jsonl(path, records)
    return path


def items_files(directory: Path) -> dict[str, Path]:
    """{task name: path} of the items files directly in ``directory``."""
    return {p.name[:-len(SUFFIX)]: p for p in sorted(Path(directory).glob(f"*{SUFFIX}")) if p.is_file()}


def kind_of(records: list[dict]) -> str:
    first = records[0]
    if "paradigm" in first:
        return "minimal_pairs"
    if "correct_norm" in first:
        return "multiple_choice"
    return "items"


def read_items(path: Path) -> tuple[str, list[dict]]:
    """(kind, records) of an items file; a torn, foreign or empty one is a UserError naming it."""
    from tinylm.rundir.files import read_jsonl

    path = Path(path)
    fix = "evaluate the model again with `tinylm eval` (it rewrites the file)"
    records = read_jsonl(path, fix)
    if not records:
        raise UserError(f"{path} holds no items: {fix}")
    kind = kind_of(records)
    needed = ("id", *METRICS[kind].values(), *(("paradigm", "field") if kind == "minimal_pairs" else ()))
    for number, r in enumerate(records, start=1):
        missing = [k for k in needed if k not in r]
        if missing or not all(isinstance(r[k], bool) for k in METRICS[kind].values()):
            what = f"no {', '.join(missing)}" if missing else "a verdict that is not true/false"
            raise UserError(f"{path} line {number} is not a per-item result ({what}): {fix}")
    return kind, records
