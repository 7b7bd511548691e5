"""Reading method options as a recipe writes them (shared by the methods' `Config.__post_init__`).

The registry passes YAML values through unchanged, and YAML 1.1 reads `1e-3` as a string; these
helpers accept that and raise `ValueError`, which the registry turns into one line naming the method.
"""

from __future__ import annotations

from tinylm.errors import UserError
from tinylm.duration import Duration, parse_duration


def number(value, where: str, kind=float):
    """A float (or, with kind=int, a whole number) from a YAML value."""
    if isinstance(value, bool):
        raise ValueError(f"{where} must be a number, not {value!r}")
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{where} must be a number, not {value!r}") from None
    if kind is int:
        if not out.is_integer():
            raise ValueError(f"{where} must be a whole number, not {value!r}")
        return int(out)
    return out


def duration(value, where: str) -> Duration:
    """`10k steps`, `61M tokens`, `2 epochs` or a bare number of steps."""
    try:
        return parse_duration(value)
    except UserError as e:
        raise ValueError(f"{where}: {e}") from None
