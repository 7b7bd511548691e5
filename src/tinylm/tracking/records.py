"""What a tracker is given: a `metrics.jsonl` record's numbers, and the recipe as flat hyperparameters.

Trackers take scalars keyed by step, so a record's non-numeric fields (an event's parameter names, a
digest) stay in `metrics.jsonl` alone. NaN and inf, which `metrics.jsonl` writes as strings (JSON has
none), go to the trackers as the floats they are: a divergence should be seen on the curve.
"""

from __future__ import annotations

import math

NOT_SCALARS = ("step", "event")
NON_FINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


def scalars(record: dict) -> dict[str, float]:
    """The record's numeric fields (not `step`), booleans and text left out."""
    out = {}
    for key, value in record.items():
        if key in NOT_SCALARS or isinstance(value, bool):
            continue
        if isinstance(value, (int, float)):
            out[key] = float(value)
        elif isinstance(value, str) and value in NON_FINITE:
            out[key] = NON_FINITE[value]
    return out


def event_tag(name: str) -> str:
    """The scalar an event is drawn as: `events/<name>` = 1 at its step, in every tracker alike."""
    return f"events/{name}"


def flat_hparams(tree, prefix: str = "") -> dict[str, object]:
    """The resolved recipe as `{"train.lr": 0.001, "methods.0.sleep.episode": "50 steps", ...}`: numbers,
    strings and booleans kept, None as "None", an empty list or mapping as "[]" / "{}"."""
    if isinstance(tree, dict) and tree:
        out = {}
        for key, value in tree.items():
            out.update(flat_hparams(value, f"{prefix}{key}."))
        return out
    if isinstance(tree, list) and tree:
        out = {}
        for i, value in enumerate(tree):
            out.update(flat_hparams(value, f"{prefix}{i}."))
        return out
    key = prefix[:-1]
    if isinstance(tree, (bool, int, float, str)):
        return {key: tree}
    return {key: "None" if tree is None else str(tree)}
