"""What differs between the resolved recipes of the runs a report compares.

Two runs' `config.yaml` share almost every line (the defaults are resolved into them), so a reader
needs the few keys that differ, side by side. Keys are flattened the way `--set` names them
(`train.lr`, `methods.0.sleep.episode`), so a difference reads as the override that would make it.
A key one run lacks (a method another does not use) shows as missing for that run.
"""

from __future__ import annotations

MISSING = object()


def flatten(tree, prefix: str = "") -> dict[str, object]:
    """{dotted key: leaf value}; lists of mappings are indexed (methods.0.sleep), other lists are leaves. An
    empty mapping or `methods: []` has no leaf: it reads as "(not set)" beside a run that has the keys."""
    out: dict[str, object] = {}
    if isinstance(tree, dict) or (isinstance(tree, list) and not tree and prefix == "methods"):
        for key, value in (tree.items() if isinstance(tree, dict) else ()):
            out.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    elif isinstance(tree, list) and any(isinstance(v, dict) for v in tree):
        for i, value in enumerate(tree):
            out.update(flatten(value, f"{prefix}.{i}"))
    else:
        out[prefix] = tree
    return out


def differences(configs: list[dict]) -> list[tuple[str, list]]:
    """[(key, [value per run or MISSING])] for every key whose value is not the same in all runs."""
    flat = [flatten(c) for c in configs]
    keys: list[str] = []
    for f in flat:
        keys.extend(k for k in f if k not in keys)
    rows = []
    for key in keys:
        values = [f.get(key, MISSING) for f in flat]
        if any(v != values[0] for v in values[1:]):
            rows.append((key, values))
    return rows
