"""argparse types for numbers on the command line, checked as the recipe's are (train/recipe.py's ranges).

A value outside its range ends in argparse's one line (`tinylm: error: argument --seed: ...`, exit 2),
before the command does anything: `--seed -1` once reached numpy's generator as a traceback,
`--target-loss nan` was taken and never reached.
"""

from __future__ import annotations

import argparse
import math


def whole(low: int = 0, what: str = "a whole number"):
    """An int of at least `low` (`1e3` is read as 1000)."""
    def parse(text: str) -> int:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not (math.isfinite(value) and value.is_integer() and value >= low):
            raise argparse.ArgumentTypeError(f"{text!r} is not {what} of at least {low}")
        return int(value)
    parse.__name__ = "whole number"
    return parse


def finite(low: float | None = None, above: bool = False):
    """A finite float, at least (or, with `above`, above) `low`."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not math.isfinite(value) or (low is not None and (value <= low if above else value < low)):
            bound = "" if low is None else f" {'above' if above else 'at least'} {low:g}"
            raise argparse.ArgumentTypeError(f"{text!r} is not a finite number{bound}")
        return value
    parse.__name__ = "number"
    return parse


SEED = whole(0, "a seed (a whole number)")
