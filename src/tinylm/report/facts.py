"""What a report says about a run, read once from its directory before anything is drawn or written.

A report is only as honest as what it reads, so every file goes through the readers of `rundir`
(a torn or foreign file is one line naming it, before the page is begun): the resolved recipe
(`config.yaml`), the log and its events (`metrics.jsonl`), `summary.json` when the run got that far,
and the results `tinylm eval` and `tinylm finetune` left beside it. A seed study (`tinylm train
--seeds`: `seed*/` runs and `seeds-summary.json`) is read as one entry holding its runs, so that it is
shown as a spread (mean ± std) rather than as runs that merely differ in seed.
"""

from __future__ import annotations

import re
import statistics
from dataclasses import dataclass, field
from pathlib import Path

from tinylm.rundir.files import read_json, read_jsonl, read_yaml
from tinylm.rundir.run_selection import select_runs

RUN_FILES = ("config.yaml", "metrics.jsonl")
SEEDS_SUMMARY = "seeds-summary.json"  # what `tinylm train --seeds` writes (tinylm/runs/seeds.py)


@dataclass
class RunFacts:
    """One run directory, read."""

    path: Path
    label: str
    config: dict
    log: list[dict]                 # log-step and eval lines (no "event" key), in file order
    events: list[dict]              # event lines (sleep, reinit, grow_phase, rollback, ...), in file order
    summary: dict                   # {} for a run that has not written summary.json yet
    evals: list[tuple[str, str, dict]] = field(default_factory=list)  # (kind, name, result): blimp, hellaswag, val, lm-eval
    finetunes: list[tuple[str, dict]] = field(default_factory=list)   # (where, finetune.json)

    def series(self, key: str, x: str = "step") -> list[tuple[float, float]]:
        """(x, value) of one logged number, x one of step, tokens, flops; one point per x, in order."""
        points = {}
        for r in self.log:
            value, at = r.get(key), r.get(x)
            if _number(value) and _number(at):
                points[float(at)] = float(value)
        return sorted(points.items())

    def words(self) -> int | None:
        """Words of training data seen (BabyLM's count, tinylm/data/words_seen.py): summary.json's, else the
        last logged; None for a run whose data does not count words."""
        if _number(self.summary.get("words")):
            return self.summary["words"]
        logged = self.series("words")
        return int(logged[-1][1]) if logged else None

    def logs_words(self) -> bool:
        return bool(self.series("words"))

    def throughput(self) -> dict:
        """Median tokens/s, FLOP/s and MFU over the log lines (the first steps compile and warm up), and
        the run's totals from summary.json."""
        out = {}
        for key in ("tokens_per_s", "flops_per_s", "mfu"):
            values = [v for _, v in self.series(key)]
            if values:
                out[key] = statistics.median(values)
        for key in ("wall_s", "steps", "tokens", "flops", "parameters", "device", "precision", "processes"):
            if self.summary.get(key) is not None:
                out[key] = self.summary[key]
        return out

    def samples(self) -> list[tuple[str, str]]:
        """Generated text the summary holds (`sample`, or `samples` as strings or {prompt, text}), each with
        how it was drawn (an empty prompt, a few tokens, a temperature: a short odd sample reads right)."""
        raw = self.summary.get("samples", self.summary.get("sample"))
        raw = raw if isinstance(raw, list) else [raw] if raw else []
        out = []
        for item in raw:
            if isinstance(item, dict):
                text = f"{item.get('prompt', '')}{item.get('text', item.get('continuation', ''))}"
                out.append((text, _how_sampled(item)))
            elif isinstance(item, str):
                out.append((item, ""))
        return out


def _how_sampled(item: dict) -> str:
    prompt = item.get("prompt")
    said = [f"prompt {prompt!r}" if prompt else "no prompt" if prompt is not None else ""]
    said += [f"{item[key]} {name}" if key == "tokens" else f"{name} {item[key]}"
             for key, name in (("tokens", "tokens generated"), ("temperature", "temperature"), ("top_k", "top-k"),
                               ("seed", "seed")) if item.get(key) is not None]
    return ", ".join(s for s in said if s)


@dataclass
class SeedStudy:
    """A `tinylm train --seeds` output: one run per seed and the study's own summary (if written)."""

    path: Path
    label: str
    runs: list[RunFacts]
    summary: dict


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def is_run(path: Path) -> bool:
    return all((Path(path) / name).is_file() for name in RUN_FILES)


def seed_runs(path: Path) -> list[Path]:
    """The seed runs of a study directory (seed0, seed1, ..., in seed order); [] when it is not one."""
    found = [p for p in Path(path).glob("seed*") if re.fullmatch(r"seed\d+", p.name) and is_run(p)]
    return sorted(found, key=lambda p: int(p.name[4:]))


def check_inputs(paths, skipped: list | None = None) -> list[Path]:
    """The given directories, each a run or a seed study; anything else is the user's mistake, said
    before a single file is read or written. Among several paths one that is not a run is left out with
    a note when `skipped` is a list, as `tinylm compare` does (tinylm.rundir.run_selection)."""
    return select_runs(paths, lambda path: [path] if path.is_dir() and (is_run(path) or seed_runs(path)) else [],
                       what="a run (no config.yaml and metrics.jsonl) or a seed study (no seed*/ runs)",
                       give="give a directory written by `tinylm train --out` or `tinylm train --seeds --out`",
                       usage="tinylm report RUN [RUN ...] --out report.html", skipped=skipped)


def read_run(path: Path, label: str) -> RunFacts:
    fix = f"it is not a file tinylm wrote, or it is damaged: restore it, or train the run again into {path}"
    config = read_yaml(path / "config.yaml", fix)
    records = read_jsonl(path / "metrics.jsonl", fix)
    summary = read_json(path / "summary.json", f"delete it; `tinylm train --out {path} --resume` writes it again") \
        if (path / "summary.json").is_file() else {}
    facts = RunFacts(path, label, config, [r for r in records if "event" not in r],
                     [r for r in records if "event" in r], summary)
    _read_results(facts)
    return facts


def _read_results(facts: RunFacts) -> None:
    """`tinylm eval`'s RUN/eval/<name>.json (the run's last checkpoint; older checkpoints' step-*/ are
    curves, not the run's result) and any finetune.json in the run or one folder below it."""
    fix = f"delete it and evaluate again (`tinylm eval {facts.path} ...`)"
    for path in sorted((facts.path / "eval").glob("*.json")):
        result = read_json(path, fix)
        kind = result_kind(result)
        if kind == "finetune":
            facts.finetunes.append((str(path.relative_to(facts.path)), result))
        elif kind is not None:
            facts.evals.append((kind, path.stem, result))
    for path in sorted([*facts.path.glob("finetune.json"), *facts.path.glob("*/finetune.json")]):
        facts.finetunes.append((str(path.relative_to(facts.path)), read_json(path, "delete it and fine-tune again")))


def result_kind(result: dict) -> str | None:
    """Which evaluation a result file holds, by its fields (the files are named by the user's set)."""
    if isinstance(result.get("metrics"), dict) and isinstance(result.get("task"), str):
        return "lm-eval"  # tinylm/eval/harness.py `run`: RUN/eval/lm-eval.<task>.json
    if _number(result.get("mean")) and isinstance(result.get("fields"), dict):
        return "blimp"
    if _number(result.get("acc")) and _number(result.get("acc_norm")):
        return "hellaswag"
    if _number(result.get("val_loss")):
        return "val"
    if isinstance(result.get("pretrained"), dict) or isinstance(result.get("scratch"), dict):
        return "finetune"
    return None


def read_inputs(paths) -> list[RunFacts | SeedStudy]:
    """Every run and seed study named, read whole (so a bad file ends the command before it writes)."""
    paths = check_inputs(paths)
    names = [p.resolve().name for p in paths]
    entries = []
    for path, name in zip(paths, names):
        label = f"{path.resolve().parent.name}/{name}" if names.count(name) > 1 else name
        if is_run(path):
            entries.append(read_run(path, label))
            continue
        runs = [read_run(p, f"{label}/{p.name}") for p in seed_runs(path)]
        summary = read_json(path / SEEDS_SUMMARY, f"delete it; `tinylm train --seeds ... --out {path}` writes it "
                            "again") if (path / SEEDS_SUMMARY).is_file() else {}
        entries.append(SeedStudy(path, label, runs, summary))
    return entries


def all_runs(entries: list[RunFacts | SeedStudy]) -> list[RunFacts]:
    return [r for e in entries for r in (e.runs if isinstance(e, SeedStudy) else [e])]
