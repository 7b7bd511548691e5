"""Paired comparison of two models on the same items: does B beat A, or is the gap noise?

Two accuracies on one test set are not independent samples: both models saw the very same items, so
what matters is where they *disagree*. Per task (and for BLiMP per field) this gives

* the difference in accuracy B - A (for BLiMP's headline, the mean over paradigms of the
  per-paradigm accuracies, as ``tinylm eval`` reports it; for a field, its pairs pooled, as there);
* an exact McNemar test: b = items A gets right and B wrong, c = the reverse; under "no difference"
  each discordant item is a fair coin, so p = min(1, 2 * BinomCDF(min(b, c); b + c, 1/2)), and p = 1
  when no item is discordant. For BLiMP's mean row the test pools every pair (McNemar has no
  mean-of-paradigms form); its difference and interval are of the mean;
* a paired bootstrap confidence interval (percentile) of the difference: items are resampled with
  replacement, both models' verdicts on an item travel together. Resampling is *stratified by
  paradigm* for BLiMP (each resample keeps each paradigm's pair count, so every paradigm weighs in
  the mean as it does in the reported number: the interval is of the quantity reported, and a
  paradigm cannot vanish from a resample); HellaSwag is one stratum.

Vectorised without an index matrix: a resample of a stratum's n items sums to the sum of its distinct
values weighted by multinomial(n, their frequencies) counts, which is exactly the distribution of
drawing n indices with replacement, so each stratum draws all resamples' counts in one call
(resamples x distinct values; verdict differences take at most a few values). Full BLiMP (67,000
pairs) at 10,000 resamples would need 670 million indices; this needs 67 x 10,000 x 3 counts.

Several seeds per side (a ``tinylm train --seeds`` directory) compare seed-averaged: an item's value
is the fraction of the side's seeds that get it right; accuracies, differences and the bootstrap use
that fraction. McNemar needs a yes/no per item, so it takes each side's majority vote (right for
more than half of its seeds, wrong for fewer) and says so; an even split is no vote, so such an item
is discordant for neither side (``split_votes`` counts them; counting a split as wrong would make an
even number of seeds look worse than one).
"""

from __future__ import annotations

import math

import numpy as np

from tinylm.errors import UserError
from tinylm.eval.items import METRICS

MCNEMAR = "exact McNemar: two-sided binomial test of the discordant items, p = min(1, 2 BinomCDF(min(b,c); b+c, 1/2))"


def binom_cdf_half(k: int, n: int) -> float:
    """P(X <= k) for X ~ Binomial(n, 1/2), summed in log space (exact to ~1e-12 for any n)."""
    if k < 0:
        return 0.0
    if k >= n:
        return 1.0
    j = np.arange(k, dtype=np.float64)
    logs = np.concatenate([[0.0], np.cumsum(np.log((n - j) / (j + 1)))]) - n * math.log(2.0)  # log pmf(0..k)
    top = logs.max()
    return float(math.exp(top) * np.exp(logs - top).sum())


def mcnemar(b: int, c: int) -> float:
    """Exact two-sided McNemar p-value for b and c discordant items (1 when there are none)."""
    if b < 0 or c < 0:
        raise ValueError("discordant counts are non-negative")
    if b + c == 0:
        return 1.0
    return min(1.0, 2.0 * binom_cdf_half(min(b, c), b + c))


def stratified_bootstrap_sums(values: np.ndarray, strata: np.ndarray, resamples: int, seed: int) -> np.ndarray:
    """(resamples, strata) sums of ``values`` over n_s items drawn with replacement within each stratum
    (strata in sorted order of their codes); see the module docstring for why counts, not indices."""
    values, strata = np.asarray(values, dtype=np.float64), np.asarray(strata)
    rng = np.random.default_rng(seed)
    codes = np.unique(strata)
    out = np.empty((resamples, len(codes)))
    for j, code in enumerate(codes):
        v = values[strata == code]
        distinct, counts = np.unique(v, return_counts=True)
        draws = rng.multinomial(len(v), counts / len(v), size=resamples)  # (resamples, distinct)
        out[:, j] = draws @ distinct
    return out


def interval(samples: np.ndarray, confidence: float) -> list[float]:
    """The percentile interval holding ``confidence`` of the bootstrap samples."""
    lo, hi = np.quantile(samples, [(1 - confidence) / 2, (1 + confidence) / 2])
    return [float(lo), float(hi)]


# ------------------------------------------------------------------ one task, two sides
def _matrix(name: str, kind: str, members: list[list[dict]], ids: list[str], label: str) -> dict[str, np.ndarray]:
    """{metric: (members, items) verdicts in ``ids`` order}; a member with other items is refused."""
    out = {m: np.empty((len(members), len(ids))) for m in METRICS[kind]}
    for k, records in enumerate(members):
        by_id = {r["id"]: r for r in records}
        if len(by_id) != len(ids) or any(i not in by_id for i in ids):
            differ = len(set(by_id) ^ set(ids))
            raise UserError(f"{name}: {differ} items differ between the seeds of {label} (seed runs 1 and {k + 1}): "
                            "evaluate every seed on the same data with the same --limit")
        for metric, key in METRICS[kind].items():
            out[metric][k] = [float(by_id[i][key]) for i in ids]
    return out


def votes(verdicts: np.ndarray) -> np.ndarray:
    """Per item, +1 when most of the (seeds, items) verdicts are right, -1 when most are wrong, 0 for an
    even split (no vote). With one seed: the verdict itself."""
    return np.sign(2 * verdicts.sum(0) - len(verdicts)).astype(int)


def _row(metric: str, a: np.ndarray, b: np.ndarray, va: np.ndarray, vb: np.ndarray, sums: np.ndarray,
         reduce, confidence: float) -> dict:
    """One line of the comparison: ``a``, ``b`` the per-item (seed-averaged) values, ``va``, ``vb`` the
    votes, ``sums`` the bootstrap samples of the difference; ``reduce`` turns per-item values into the
    reported accuracy."""
    acc_a, acc_b = float(reduce(a)), float(reduce(b))
    n_b, n_c = int(((va > 0) & (vb < 0)).sum()), int(((va < 0) & (vb > 0)).sum())
    return {"metric": metric, "n": int(a.size), "a": acc_a, "b": acc_b, "difference": acc_b - acc_a,
            "ci": interval(sums, confidence), "a_only": n_b, "b_only": n_c, "mcnemar_p": mcnemar(n_b, n_c),
            "split_votes": int(((va == 0) | (vb == 0)).sum())}


def compare_task(name: str, kind: str, a_members: list[list[dict]], b_members: list[list[dict]], *,
                 labels: tuple[str, str] = ("A", "B"), resamples: int = 10_000, seed: int = 0,
                 confidence: float = 0.95) -> dict:
    """Rows B - A for one task whose item records each side's members (seeds) hold: "rows" (the task's
    metrics, level "task"; for minimal pairs then each field, level "field") and, for minimal pairs,
    "paradigms" (each paradigm's row, from the same resamples)."""
    ids_a, ids_b = [r["id"] for r in a_members[0]], {r["id"] for r in b_members[0]}
    only_a, only_b = len(set(ids_a) - ids_b), len(ids_b - set(ids_a))
    if only_a or only_b:
        raise UserError(f"{name}: {only_a + only_b} items differ between {labels[0]} and {labels[1]} ({only_a} only "
                        f"in the first, {only_b} only in the second): evaluate both on the same data with the same "
                        "--limit")
    ids = ids_a
    if kind == "minimal_pairs":
        paradigm = np.array([r["paradigm"] for r in a_members[0]])
        field = np.array([r["field"] for r in a_members[0]])
    else:
        paradigm, field = np.zeros(len(ids), dtype=int), None
    mats_a = _matrix(name, kind, a_members, ids, labels[0])
    mats_b = _matrix(name, kind, b_members, ids, labels[1])
    codes, sizes = np.unique(paradigm, return_counts=True)
    rows, paradigms = [], []
    for metric in METRICS[kind]:
        ma, mb = mats_a[metric], mats_b[metric]
        a, b = ma.mean(0), mb.mean(0)
        va, vb = votes(ma), votes(mb)
        sums = stratified_bootstrap_sums(b - a, paradigm, resamples, seed)
        if kind != "minimal_pairs":
            rows.append({**_row(metric, a, b, va, vb, sums[:, 0] / len(a), np.mean, confidence), "level": "task"})
            continue
        means = lambda x: np.mean([x[paradigm == c].mean() for c in codes])  # noqa: E731
        rows.append({**_row("mean over paradigms", a, b, va, vb, (sums / sizes).mean(1), means, confidence),
                     "level": "task"})
        for f in sorted(set(field.tolist())):
            inside = field == f
            cols = np.isin(codes, np.unique(paradigm[inside]))
            rows.append({**_row(f, a[inside], b[inside], va[inside], vb[inside], sums[:, cols].sum(1) / inside.sum(),
                                np.mean, confidence), "level": "field"})
        for j, c in enumerate(codes):
            inside = paradigm == c
            paradigms.append({**_row(str(c), a[inside], b[inside], va[inside], vb[inside], sums[:, j] / sizes[j],
                                     np.mean, confidence), "field": str(field[inside][0])})
    out = {"kind": kind, "items": len(ids), "seeds": [len(a_members), len(b_members)], "rows": rows}
    if kind == "minimal_pairs":
        out["paradigms"] = paradigms
    return out


def check_options(resamples: int, confidence: float, seed: int) -> None:
    if not 1 <= resamples <= 1_000_000:
        raise UserError(f"--resamples {resamples}: give a number of bootstrap resamples from 1 to 1,000,000 "
                        "(10,000 is the default)")
    if not 0 < confidence < 1:
        raise UserError(f"--confidence {confidence:g}: give a level between 0 and 1, e.g. --confidence 0.95")
    if seed < 0:
        raise UserError(f"--seed {seed}: give a non-negative whole number")
