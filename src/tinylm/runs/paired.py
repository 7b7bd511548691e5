"""`tinylm compare A B --paired`: find each side's per-item results and compare them task by task.

A side is a run (its ``eval/``: the latest checkpoint's results), a folder of results itself (an
older checkpoint's ``RUN/eval/step-N/``, or the ``--out`` of an ensemble or a transformers model), or
a seed study (``tinylm train --seeds``' folder: each ``seed*/`` run's ``eval/``, compared
seed-averaged). The statistics are ``tinylm.eval.paired``'s; this module only reads directories.
"""

from __future__ import annotations

from pathlib import Path

from tinylm.errors import UserError
from tinylm.eval.items import items_files, read_items
from tinylm.eval.paired import MCNEMAR, check_options, compare_task


def _hint(path: Path) -> str:
    return f"evaluate it first: tinylm eval {path} --blimp DIR --hellaswag FILE"


def result_dirs(path: Path) -> list[Path]:
    """The folders of ``*.items.jsonl`` a side stands for: one, or one per seed run."""
    path = Path(path).expanduser()
    if not path.is_dir():
        raise UserError(f"{path} is not a directory: give a run, a seed study (tinylm train --seeds) or a folder "
                        "of tinylm eval results")
    if items_files(path):
        return [path]
    if (path / "summary.json").is_file():  # a run
        if not items_files(path / "eval"):
            raise UserError(f"{path} is a run without per-item results (no eval/*.items.jsonl): {_hint(path)}")
        return [path / "eval"]
    if list(path.glob("*/summary.json")):  # a seed study or a folder of runs
        from tinylm.runs.seeds import group_runs

        runs = group_runs(path)
        bare = [r for r in runs if not items_files(r / "eval")]
        if bare:
            names = ", ".join(r.name for r in bare[:4]) + (f" and {len(bare) - 4} more" if len(bare) > 4 else "")
            raise UserError(f"{path}: {names} {'has' if len(bare) == 1 else 'have'} no per-item results "
                            f"(eval/*.items.jsonl): evaluate every seed run first: tinylm eval {bare[0]} --blimp DIR "
                            "--hellaswag FILE")
        return [r / "eval" for r in runs]
    raise UserError(f"{path} holds no per-item results (no *.items.jsonl, no eval/ of a run, no seed runs): "
                    f"{_hint(path)}")


def load_side(path: Path, notes: list[str]) -> dict:
    """{"path", "members": [folders], "tasks": {name: (kind, [records per member])}}: the tasks every
    member has (one that only some seeds have is left out with a note)."""
    dirs = result_dirs(path)
    files = [items_files(d) for d in dirs]
    common = set(files[0]).intersection(*files[1:])
    for name in sorted(set().union(*files) - common):
        notes.append(f"left out {name}: only some seed runs of {path} have it")
    tasks = {}
    for name in sorted(common):
        read = [read_items(f[name]) for f in files]
        kinds = {k for k, _ in read}
        if len(kinds) > 1:
            raise UserError(f"{path}: {name} holds different kinds of items in different seed runs; evaluate them "
                            "again with one --blimp / --hellaswag each")
        tasks[name] = (read[0][0], [records for _, records in read])
    return {"path": str(path), "members": [str(d) for d in dirs], "tasks": tasks}


def compare_paired(a: Path, b: Path, *, resamples: int = 10_000, seed: int = 0, confidence: float = 0.95) -> dict:
    """B - A on every task both sides were evaluated on (see tinylm.eval.paired)."""
    check_options(resamples, confidence, seed)
    notes: list[str] = []
    side_a, side_b = load_side(a, notes), load_side(b, notes)
    common = sorted(set(side_a["tasks"]) & set(side_b["tasks"]))
    for name in sorted(set(side_a["tasks"]) ^ set(side_b["tasks"])):
        has, lacks = (a, b) if name in side_a["tasks"] else (b, a)
        notes.append(f"left out {name}: {has} has per-item results for it, {lacks} has none")
    if not common:
        raise UserError(f"{a} and {b} share no evaluated task: evaluate both on the same --blimp / --hellaswag data")
    tasks = {}
    for name in common:
        (kind_a, members_a), (kind_b, members_b) = side_a["tasks"][name], side_b["tasks"][name]
        if kind_a != kind_b:
            raise UserError(f"{name}: {a} and {b} hold different kinds of items under one name; evaluate both on "
                            "the same data")
        tasks[name] = compare_task(name, kind_a, members_a, members_b, labels=(str(a), str(b)),
                                   resamples=resamples, seed=seed, confidence=confidence)
    seeds = max(len(side_a["members"]), len(side_b["members"]))
    return {"a": {"path": str(a), "members": side_a["members"]}, "b": {"path": str(b), "members": side_b["members"]},
            "difference": "B - A", "resamples": resamples, "seed": seed, "confidence": confidence,
            "bootstrap": "paired percentile bootstrap; BLiMP resampled within paradigms (stratified), so its "
                         "interval is of the mean over paradigms as reported",
            "mcnemar": MCNEMAR + ("; on each side's majority vote over its seeds (an even split is no vote)"
                                  if seeds > 1 else "")
                       + "; BLiMP's mean row pools every pair",
            "seed_average": "per item, the fraction of a side's seeds that are right" if seeds > 1 else None,
            "tasks": tasks, "notes": notes}
