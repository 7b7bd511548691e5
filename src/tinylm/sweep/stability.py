"""Does the sweep's winner stay ahead with new seeds? BabyLlama-2's check, as a report.

BabyLlama-2's sweep found runs that beat the teachers, but "re-training them from a different
initial state, but otherwise with the exact same parameters, lead to models that significantly
under-performed": the best of many trials is flattered by its lucky seed. So after a search, the
best config and the base recipe are each trained again with N seeds the sweep never used (both the
init and the data-order seed), and the report says in numbers and in words whether the best
config's lower validation loss survives: difference of means, in pooled standard deviations, and
Welch's t with a one-sided p for "the best config is lower".
"""

from __future__ import annotations

from pathlib import Path

from tinylm.errors import UserError
from tinylm.runs.seeds import train_seeds
from tinylm.runs.stats import compare, describe, mean_pm
from tinylm.train.recipe import recipe_from_dict
from tinylm.rundir.serialize import write_json

ALPHA = 0.05  # the one-sided level at which "survives" is said
REPORT = "stability.json"


def stability_seeds(base: dict, n: int) -> list[int]:
    """The first `n` seeds that are neither the sweep's init seed nor its data seed."""
    if n < 2:
        raise UserError(f"--stability {n}: a spread needs at least 2 new seeds (3-5 is usual)")
    recipe = recipe_from_dict(base)
    used = {recipe.train.seed, recipe.data.seed}
    seeds, s = [], 0
    while len(seeds) < n:
        if s not in used:
            seeds.append(s)
        s += 1
    return seeds


def stability_check(base: dict, best: dict, out_dir: Path, n: int, *, best_trial: dict, force: bool = False,
                    on_seed=None, on_start=None, on_step=None) -> dict:
    """Train `best` and `base` (recipe dicts, at the sweep's budget) with `n` new seeds into
    OUT/stability/{trial-NNNN,base}/seed{N}/ and write OUT/stability.json. Resumable like any seed
    study; an interrupted one returns `{"interrupted": True}` without a verdict."""
    out_dir = Path(out_dir)
    seeds = stability_seeds(base, n)
    best_dir = f"stability/trial-{best_trial['trial']:04d}"
    kwargs = dict(force=force, on_seed=on_seed, on_start=on_start, on_step=on_step)
    runs = {}
    for label, recipe, directory in (("best", best, best_dir), ("base", base, "stability/base")):
        result = train_seeds(recipe, out_dir / directory, seeds, **kwargs)
        if result.interrupted:
            return {"interrupted": True}
        runs[label] = (directory, [r["val_loss"] for r in result.rows])
    report = stability_report(runs["best"][1], runs["base"][1], seeds, best_trial)
    report["best"]["runs"], report["base"]["runs"] = runs["best"][0], runs["base"][0]
    write_json(out_dir / REPORT, report)
    return report


def stability_report(best: list[float], base: list[float], seeds: list[int], best_trial: dict) -> dict:
    """Numbers and a plain-words verdict for the best config's and the base recipe's final val losses."""
    b, a = describe(best), describe(base)
    c = compare(b["values"], a["values"])
    w = c["welch"]
    lower = c["difference"] is not None and c["difference"] < 0
    p = w["p_a_lower"] if w else None
    survives = bool(lower and p is not None and p < ALPHA)
    verdict = ("survives" if survives else "not significant" if lower else "does not survive")
    sweep_value = best_trial.get("val_loss")
    optimism = b["mean"] - sweep_value if b["n"] and sweep_value is not None else None
    report = {
        "metric": "final validation loss (lower is better)", "seeds": seeds,
        "best": {"trial": best_trial["trial"], "overrides": best_trial.get("overrides", []),
                 "sweep_val_loss": sweep_value, **b},
        "base": a,
        "difference": c["difference"], "pooled_std": c["pooled_std"], "difference_in_pooled_std": c["effect_size"],
        "welch": w, "alpha": ALPHA, "survives": survives, "verdict": verdict,
        "sweep_optimism": optimism,
    }
    report["summary"] = _words(report)
    return report


def _words(r: dict) -> str:
    b, a = r["best"], r["base"]
    text = (f"Re-trained with {len(r['seeds'])} new seeds ({', '.join(map(str, r['seeds']))}), the best config "
            f"(trial {b['trial']}: {' '.join(b['overrides']) or 'no changes'}) reaches a validation loss of "
            f"{mean_pm(b)} against the base recipe's {mean_pm(a)} (mean ± sample std).")
    if r["difference"] is None:
        return text + " Too few finished seeds to compare."
    d = r["difference"]
    text += f" It is {abs(d):.4f} {'lower' if d < 0 else 'higher' if d > 0 else 'different'}"
    if r["difference_in_pooled_std"] is not None:
        text += f", {abs(r['difference_in_pooled_std']):.1f} pooled standard deviations"
    w = r["welch"]
    if w is not None:
        df = f" (df {w['df']:.1f})" if w["df"] is not None else ""
        text += f"; Welch's t = {w['t']:+.2f}{df}, one-sided p = {w['p_a_lower']:.3g} for 'the best config is lower'"
    text += {"survives": f". The advantage survives new seeds (p < {r['alpha']}).",
             "not significant": f". The best config is lower on average, but not clearly: p >= {r['alpha']}; "
                                "more seeds would tell.",
             "does not survive": ". The advantage does not survive new seeds: the sweep's winner was a lucky run."
             }[r["verdict"]]
    if r["sweep_optimism"] is not None and r["sweep_optimism"] > 0:
        text += (f" In the sweep it scored {b['sweep_val_loss']:.4f}; re-trained it averages {r['sweep_optimism']:.4f}"
                 " more (the best of many trials is flattered by its seed).")
    return text
