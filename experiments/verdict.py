"""The one rule that turns two arms' per-seed values into a claim's verdict.

Every claim in experiments/README.md compares two arms (FORGETTER against normal training, a grown
model against its baseline, ...) and the paper says which of the two is lower. The verdict is never
typed per claim: it comes from the per-seed values by `verdict` below, whose rule (`RULE`) the README
prints. Welch's test is tinylm's own (`tinylm.runs.stats`, as the sweep's stability check uses).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from tinylm.runs.stats import welch

ALPHA = 0.05  # two-sided level at which a difference is "beyond the seed noise"

REPRODUCED = "reproduced"
NOT_REPRODUCED = "not reproduced"
INCONCLUSIVE = "inconclusive (within seed spread)"
NOT_TESTABLE = "not testable here"
LABELS = (REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE, NOT_TESTABLE)

RULE = (f"Each claim compares two arms' per-seed values (one value per seed; arms are treated as "
        f"independent samples, even where they share seeds). Welch's t-test on them: when the two-sided "
        f"p < {ALPHA}, the difference is beyond the seed noise and the verdict is **{REPRODUCED}** if its "
        f"sign is the paper's, **{NOT_REPRODUCED}** if it is the opposite; otherwise "
        f"**{INCONCLUSIVE}**. An arm with fewer than two values has no spread to judge against: "
        f"**{NOT_TESTABLE}**, with that reason. (At 3 seeds a Welch test needs |t| of about 2.8 to 4.3 "
        f"to reach p < {ALPHA}.)")


@dataclass(frozen=True)
class Verdict:
    label: str  # one of LABELS
    why: str    # the numbers behind it, in one line


def verdict(a: list[float], b: list[float], paper_says_a_is: str, names: tuple[str, str] = ("a", "b")) -> Verdict:
    """The verdict on "a is `paper_says_a_is` ('lower' or 'higher') than b", from per-seed values."""
    if paper_says_a_is not in ("lower", "higher"):
        raise ValueError(f"paper_says_a_is must be 'lower' or 'higher', not {paper_says_a_is!r}")
    a, b = [float(v) for v in a], [float(v) for v in b]
    if len(a) < 2 or len(b) < 2:
        return Verdict(NOT_TESTABLE, f"{names[0]}: n={len(a)}, {names[1]}: n={len(b)}; "
                                     f"an arm with one value has no seed spread")
    diff = statistics.fmean(a) - statistics.fmean(b)
    w = welch(a, b)
    t = "inf" if abs(w["t"]) == float("inf") else f"{w['t']:.2f}"
    df = "" if w["df"] is None else f", df {w['df']:.1f}"
    numbers = f"{names[0]} - {names[1]} = {diff:+.4g}, Welch t {t}{df}, p {w['p_two_sided']:.3g}"
    if w["p_two_sided"] >= ALPHA:
        return Verdict(INCONCLUSIVE, f"{numbers}: within the seed spread")
    lower = diff < 0
    if lower == (paper_says_a_is == "lower"):
        return Verdict(REPRODUCED, f"{numbers}: {names[0]} {paper_says_a_is}, as the paper says")
    return Verdict(NOT_REPRODUCED, f"{numbers}: {names[0]} {'lower' if lower else 'higher'}, "
                                   f"the paper says {paper_says_a_is}")


def is_verdict(label: str) -> bool:
    """A verdict string the rule can produce (a `not testable here` may carry its reason after it)."""
    return label in LABELS or label.startswith(NOT_TESTABLE)
