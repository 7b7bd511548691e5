"""Choosing and ordering runs of a listing: `--where 'val_loss<4.5'`, `--sort=-flops`.

The grammar is one comparison, `FIELD OP VALUE`: OP is one of `< <= > >= = !=` (`==` reads as `=`); a
number may end in k, M, G (or B) or T (`tokens>=10M`, `flops<1e15`); `methods=sleep` holds when the run's
recipe has that method, `methods!=sleep` when it has not. Several conditions must all hold. A run without
the number compared (no BLiMP yet) does not match, and sorts last either way.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from tinylm.errors import UserError
from tinylm.rundir.run_facts import STATUSES

TEXT = ("run", "recipe", "status", "methods")
NUMBERS = ("steps", "total_steps", "tokens", "flops", "best_val_loss", "val_loss", "blimp", "wall_s")
FIELDS = TEXT + NUMBERS  # what a row of `tinylm runs` has, and what --where and --sort may name
OPS = ("<=", ">=", "!=", "==", "<", ">", "=")
_CONDITION = re.compile(r"^\s*([A-Za-z_]+)\s*(<=|>=|!=|==|<|>|=)\s*(\S(?:.*\S)?)\s*$")
_SUFFIX = {"k": 1e3, "M": 1e6, "G": 1e9, "B": 1e9, "T": 1e12}
_GRAMMAR = "FIELD OP VALUE, OP one of < <= > >= = !="


def _fields_hint() -> str:
    return f"fields: {', '.join(FIELDS)}"


def _number(text: str, condition: str) -> float:
    scale = _SUFFIX.get(text[-1], 1.0) if text else 1.0
    try:
        return float(text[:-1] if scale != 1.0 else text) * scale
    except ValueError:
        raise UserError(f"--where '{condition}': {text!r} is not a number (e.g. 4.5, 1e15, 10M)") from None


@dataclass(frozen=True)
class Condition:
    field: str
    op: str
    value: object

    def holds(self, row: dict) -> bool:
        have = row.get(self.field)
        if self.field == "methods":
            return (self.value in have) == (self.op == "=")
        if have is None:
            return False
        if self.op == "=":
            return have == self.value
        if self.op == "!=":
            return have != self.value
        return {"<": have < self.value, "<=": have <= self.value, ">": have > self.value,
                ">=": have >= self.value}[self.op]


def parse_condition(text: str) -> Condition:
    """`val_loss<4.5` as a Condition; anything else is one line naming the grammar and the fields."""
    m = _CONDITION.match(text)
    if not m:
        raise UserError(f"--where '{text}' is not a comparison: write {_GRAMMAR}, e.g. 'val_loss<4.5' "
                        f"({_fields_hint()})")
    name, op, value = m.group(1), m.group(2).replace("==", "="), m.group(3)
    if name not in FIELDS:
        raise UserError(f"--where '{text}': no field {name!r} ({_fields_hint()})")
    if name in NUMBERS:
        return Condition(name, op, _number(value, text))
    if op not in ("=", "!="):
        raise UserError(f"--where '{text}': {name} is text, compared with = or != only")
    if name == "status" and value not in STATUSES:
        raise UserError(f"--where '{text}': a status is one of {', '.join(STATUSES)}")
    return Condition(name, op, value)


def select(rows: list[dict], conditions: list[Condition]) -> list[dict]:
    return [row for row in rows if all(c.holds(row) for c in conditions)]


def sort_key(text: str) -> tuple[str, bool]:
    """`--sort val_loss` (ascending) or `--sort=-val_loss` (descending) as (field, descending)."""
    name, descending = (text[1:], True) if text.startswith("-") else (text, False)
    if name not in FIELDS:
        raise UserError(f"--sort {text}: no field {name!r} ({_fields_hint()}; a leading - sorts descending)")
    return name, descending


def ordered(rows: list[dict], text: str | None) -> list[dict]:
    """The rows by `text` (a sort_key), runs without the value last; by path when `text` is None."""
    if text is None:
        return sorted(rows, key=lambda r: r["run"])
    name, descending = sort_key(text)
    present = [r for r in rows if r.get(name) is not None]
    missing = [r for r in rows if r.get(name) is None]

    def key(row):
        value = row[name]
        return ",".join(value) if isinstance(value, list) else value
    return sorted(present, key=key, reverse=descending) + sorted(missing, key=lambda r: r["run"])
