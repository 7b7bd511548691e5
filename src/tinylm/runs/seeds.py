"""One recipe over several seeds: `OUT/seed{N}/` per seed, then `OUT/seeds-summary.json`.

A single run's validation loss says little until one knows how much it moves with the seed
(BabyLlama-2's sweep winners fell back when re-trained from another initialisation). So a seed
study is a first-class thing: each seed sets both the init seed (`train.seed`: weights, dropout)
and the data-order seed (`data.seed`) to N, unless the user pinned one with `--set` to vary the
other alone; the validation windows (`eval.seed`) never change, so every seed is scored alike.

Re-running the same study continues it: a finished seed is skipped, an interrupted one resumes
from its checkpoint, a seed that was never started starts. `train_seeds` is also what the sweep's
stability check uses for its re-training.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from tinylm.errors import UserError
from tinylm.output_location import check_output_dir, foreign_contents
from tinylm.rundir.checkpoints import latest_checkpoint
from tinylm.rundir.metrics import best_val_loss
from tinylm.rundir.serialize import write_json
from tinylm.runs.execute import execute
from tinylm.runs.stats import describe
from tinylm.train.build import run_changes
from tinylm.train.recipe import apply_overrides, recipe_from_dict

SEED_KEYS = ("train.seed", "data.seed")  # init (weights, dropout) and data order; eval.seed stays
SUMMARY = "seeds-summary.json"


def parse_seeds(text: str, option: str = "--seeds") -> list[int]:
    """`5` -> seeds 0..4; `3,7,11` -> those seeds. A count below 1, a non-number, a negative or a
    repeated seed is the user's mistake."""
    text = str(text).strip()
    hint = f"give a count (`{option} 5` = seeds 0..4) or a comma list of seeds (`{option} 3,7,11`)"
    try:
        if "," in text:
            seeds = [int(p) for p in text.split(",") if p.strip()]
            if not seeds:
                raise ValueError
        else:
            count = int(text)
            if count < 1:
                raise UserError(f"{option} {text}: at least one seed is needed; {hint}")
            seeds = list(range(count))
    except ValueError:
        raise UserError(f"{option} {text!r} is not a number or a list of numbers: {hint}") from None
    if any(s < 0 for s in seeds):
        raise UserError(f"{option} {text}: seeds are non-negative whole numbers; {hint}")
    if len(set(seeds)) != len(seeds):
        raise UserError(f"{option} {text}: a seed is repeated; each seed is one run, {hint}")
    return seeds


def pinned_seed_keys(overrides: list[str]) -> tuple[str, ...]:
    """The seed keys the user fixed with `--set` (those stay; the others follow the seed)."""
    keys = {str(o).split("=", 1)[0].strip() for o in overrides or []}
    return tuple(k for k in SEED_KEYS if k in keys)


def seed_recipe(base: dict, seed: int, pinned: tuple[str, ...] = ()) -> dict:
    """`base` (a recipe dict) with the unpinned seed keys set to `seed`, named `<name>-seed<seed>`."""
    data = apply_overrides(base, [f"{k}={seed}" for k in SEED_KEYS if k not in pinned])
    data["name"] = f"{base.get('name', 'run')}-seed{seed}"
    return data


@dataclass
class SeedsResult:
    out_dir: Path
    rows: list[dict]                       # one per seed reached, in the order given
    summary: dict                          # what seeds-summary.json holds
    trained: list[int] = field(default_factory=list)   # seeds this call trained (resumed ones included)
    interrupted: bool = False


def train_seeds(base: dict, out_dir: Path, seeds: list[int], *, pinned: tuple[str, ...] = (), force: bool = False,
                on_seed: Callable[[int, Path, str], None] | None = None, on_start=None, on_step=None,
                on_event=None, write: bool = True) -> SeedsResult:
    """Train `base` once per seed into `out_dir/seed{N}/`; write and return the summary.

    `on_seed(seed, run_dir, state)` is told before each seed whether it is `done` (skipped),
    `resume` or `new`. `force` continues seed runs whose recipe changed (as `train --force`).
    An interrupted seed stops the study (the summary says `complete: false`); run it again.
    """
    out_dir = check_output_dir(out_dir, accept=lambda p: foreign_contents(
        p, (SUMMARY, *(f"seed{s}" for s in seeds)), "a seed study", "choose a new or empty --out"))
    result = SeedsResult(out_dir, [], {})
    for seed in seeds:
        recipe = recipe_from_dict(seed_recipe(base, seed, pinned))
        run_dir = out_dir / f"seed{seed}"
        state = _state(run_dir, recipe, force)
        if on_seed:
            on_seed(seed, run_dir, state)
        if state == "done":
            summary = json.loads((run_dir / "summary.json").read_text())
        else:
            result.trained.append(seed)
            summary = execute(recipe, run_dir, resume=state == "resume", force=force, on_start=on_start,
                              on_step=on_step, on_event=on_event)
        result.rows.append(seed_row(seed, recipe, run_dir, summary))
        if not summary.get("complete"):
            result.interrupted = True
            break
    result.summary = summarise(base, seeds, pinned, result.rows)
    if write:
        write_json(out_dir / SUMMARY, result.summary)
    return result


def _state(run_dir: Path, wanted, force: bool) -> str:
    """done (finished with this recipe), resume (a checkpoint is there), or new (nothing worth keeping)."""
    if latest_checkpoint(run_dir) is None:  # never reached a checkpoint: it starts again, any recipe
        return "new"
    changed = run_changes(run_dir, wanted)  # both resolved, as `train --resume` compares them
    if changed and not force:
        raise UserError(f"{run_dir} was trained with a different recipe (changed: {', '.join(changed)}): run the "
                        "same recipe and --set values again, choose another --out, or pass --force to continue it")
    done = run_dir / "summary.json"
    if not changed and done.exists() and json.loads(done.read_text()).get("complete"):
        return "done"
    return "resume"


def seed_row(seed: int, recipe, run_dir: Path, summary: dict) -> dict:
    best, best_step = best_val_loss(run_dir)
    return {"seed": seed, "init_seed": recipe.train.seed, "data_seed": recipe.data.seed, "run_dir": run_dir.name,
            "complete": bool(summary.get("complete")), "steps": summary.get("steps"),
            "val_loss": summary.get("val_loss"), "best_val_loss": best, "best_step": best_step,
            "wall_s": summary.get("wall_s")}


def summarise(base: dict, seeds: list[int], pinned: tuple[str, ...], rows: list[dict]) -> dict:
    done = [r for r in rows if r["complete"]]
    return {"recipe": base.get("name"), "seeds": list(seeds),
            "varied": [k for k in SEED_KEYS if k not in pinned], "pinned": list(pinned),
            "validation": "the same fixed windows for every seed (eval.seed)",
            "complete": len(done) == len(seeds),
            "statistics": "mean and sample standard deviation (n - 1) over the finished seeds",
            "val_loss": describe([r["val_loss"] for r in done]),
            "best_val_loss": describe([r["best_val_loss"] for r in done]),
            "runs": rows}


# ---------------------------------------------------------------- groups of runs (tinylm seeds)
def group_runs(path: Path) -> list[Path]:
    """The finished runs of a seed study (`seed*/`) or of any directory of runs, in seed order."""
    path = Path(path).expanduser()
    if not path.is_dir():
        raise UserError(f"{path} does not exist: give a directory written by `tinylm train --seeds` (or of runs)")
    runs = sorted(p.parent for p in path.glob("seed*/summary.json"))
    if not runs:
        runs = sorted(p.parent for p in path.glob("*/summary.json"))
    if not runs:
        raise UserError(f"{path} holds no runs (no seed*/summary.json): give the --out of `tinylm train --seeds`")
    number = re.compile(r"seed(\d+)$")
    return sorted(runs, key=lambda p: (int(m.group(1)) if (m := number.search(p.name)) else math.inf, p.name))


def group_values(path: Path, metric: str = "val_loss") -> tuple[list[float], list[dict]]:
    """The metric of each finished run of a group, and the runs left out (unfinished or no value)."""
    from tinylm.eval.compare import metric as summary_metric  # aliases: blimp -> blimp_mean

    values, skipped = [], []
    for run in group_runs(path):
        summary = json.loads((run / "summary.json").read_text())
        value = best_val_loss(run)[0] if metric == "best_val_loss" else summary_metric(summary, metric)
        if not summary.get("complete", True) or value is None:
            skipped.append({"run": str(run), "why": "unfinished" if not summary.get("complete", True) else
                            f"no {metric}"})
        else:
            values.append(value)
    return values, skipped
