"""The few statistics that seed studies need: mean ± sample std, and Welch's t between two groups.

Written out rather than taken from scipy (not a dependency) because they are short and their
conventions matter: the std is the *sample* std (n - 1), as papers report over seeds, and the test
is Welch's, which does not assume the two groups vary alike (a tuned config and a base recipe
need not). The t distribution's tail comes from the regularised incomplete beta function.
"""

from __future__ import annotations

import math
import statistics


def describe(values: list[float]) -> dict:
    """n, mean, sample std (None below two values), min, max and the values themselves."""
    values = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    if not values:
        return {"n": 0, "mean": None, "std": None, "min": None, "max": None, "values": []}
    return {"n": len(values), "mean": statistics.fmean(values),
            "std": statistics.stdev(values) if len(values) > 1 else None,
            "min": min(values), "max": max(values), "values": values}


def pooled_std(a: list[float], b: list[float]) -> float | None:
    """The std both groups would share if they varied alike (the yardstick of an effect size)."""
    na, nb = len(a), len(b)
    if na < 2 or nb < 2:
        return None
    va, vb = statistics.variance(a), statistics.variance(b)
    return math.sqrt(((na - 1) * va + (nb - 1) * vb) / (na + nb - 2))


def welch(a: list[float], b: list[float]) -> dict | None:
    """Welch's t for mean(a) - mean(b): t, Welch-Satterthwaite df, two-sided p, and the one-sided p
    of "a is lower than b". None when a group has fewer than two values (no variance to test)."""
    na, nb = len(a), len(b)
    if na < 2 or nb < 2:
        return None
    va, vb = statistics.variance(a) / na, statistics.variance(b) / nb
    diff = statistics.fmean(a) - statistics.fmean(b)
    if va + vb == 0:  # every seed gave the same number in both groups: certain, or no difference at all
        t = 0.0 if diff == 0 else math.copysign(math.inf, diff)
        lower = 0.5 if diff == 0 else float(diff > 0)
        return {"t": t, "df": None, "p_two_sided": 1.0 if diff == 0 else 0.0, "p_a_lower": lower}
    t = diff / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va ** 2 / (na - 1) + vb ** 2 / (nb - 1))
    upper = t_sf(t, df)  # P(T > t)
    return {"t": t, "df": df, "p_two_sided": min(1.0, 2 * min(upper, 1 - upper)), "p_a_lower": 1 - upper}


def t_sf(t: float, df: float) -> float:
    """P(T > t) for Student's t with `df` degrees of freedom (df may be fractional, as Welch's is)."""
    tail = 0.5 * betainc(df / 2, 0.5, df / (df + t * t))  # P(T > |t|)
    return tail if t >= 0 else 1 - tail


def betainc(a: float, b: float, x: float) -> float:
    """The regularised incomplete beta function I_x(a, b) (continued fraction, Lentz's method)."""
    if x <= 0:
        return 0.0
    if x >= 1:
        return 1.0
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    if x > (a + 1) / (a + b + 2):  # the fraction converges fast only on this side: use the symmetry
        return 1.0 - betainc(b, a, 1.0 - x)
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 500):
        for num in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
                    -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))):
            d = 1.0 + num * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + num / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < 1e-15:
            break
    return math.exp(log_front) * h / a


def compare(a: list[float], b: list[float]) -> dict:
    """Group a against group b: difference of means, pooled std, the difference in pooled stds
    (Cohen's d) and Welch's test. Plain numbers; callers say what they mean in words."""
    da, db = describe(a), describe(b)
    out = {"difference": None, "pooled_std": None, "effect_size": None, "welch": None}
    if da["n"] and db["n"]:
        out["difference"] = da["mean"] - db["mean"]
        out["pooled_std"] = pooled_std(da["values"], db["values"])
        if out["pooled_std"]:
            out["effect_size"] = out["difference"] / out["pooled_std"]
        out["welch"] = welch(da["values"], db["values"])
    return out


def mean_pm(d: dict, digits: int = 4) -> str:
    """`4.5123 ± 0.0210 (n=5)` for a `describe` result; `-` when there is nothing."""
    if not d or not d.get("n"):
        return "-"
    std = f" ± {d['std']:.{digits}f}" if d.get("std") is not None else ""
    return f"{d['mean']:.{digits}f}{std} (n={d['n']})"
