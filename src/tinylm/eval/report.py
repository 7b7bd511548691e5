"""Where evaluation results go (``RUN/eval/<name>.json`` and headline keys merged into
``RUN/summary.json``) and how they read in a terminal."""

from __future__ import annotations

import re
from pathlib import Path


def slug(name: str) -> str:
    return re.sub(r"[^0-9a-zA-Z]+", "_", name).strip("_").lower() or "set"


def results_target(loaded, out: str | None = None) -> tuple[Path | None, Path | None]:
    """(directory for eval/*.json, summary.json to merge into or None).

    The latest checkpoint of a run writes ``RUN/eval/`` and updates ``RUN/summary.json``; an older
    checkpoint writes ``RUN/eval/<checkpoint>/`` and leaves the summary (which describes the run's
    end) alone; a model outside a run writes only where ``--out`` says.
    """
    if out is not None:
        return Path(out).expanduser(), None
    run_dir = loaded.run_dir
    if run_dir is None:
        return None, None
    from tinylm.rundir.checkpoints import latest_checkpoint

    latest = latest_checkpoint(run_dir)
    if latest is not None and Path(latest).resolve() == Path(loaded.checkpoint).resolve():
        read_summary(Path(run_dir) / "summary.json")  # a torn one is refused here, before any scoring
        return Path(run_dir) / "eval", Path(run_dir) / "summary.json"
    return Path(run_dir) / "eval" / Path(loaded.checkpoint).name, None


def write_results(directory: Path, name: str, result: dict) -> Path:
    from tinylm.rundir.serialize import write_json

    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.json"
    write_json(path, result)
    return path


def read_summary(summary_path: Path) -> dict:
    """A run's summary.json ({} when there is none yet); a torn or foreign one is a UserError naming it."""
    from tinylm.rundir.files import read_json

    summary_path = Path(summary_path)
    if not summary_path.is_file():
        return {}
    return read_json(summary_path, f"delete it; `tinylm train --out {summary_path.parent} --resume` writes it again")


def merge_summary(summary_path: Path, headline: dict) -> None:
    from tinylm.rundir.serialize import write_json

    summary = read_summary(summary_path)
    summary.update(headline)
    write_json(summary_path, summary)


def is_run_store(recipe, store_path) -> bool:
    """Whether ``store_path`` is the store the run trained on (then its loss is the run's val_loss)."""
    if recipe is None:
        return False
    store = Path(store_path).expanduser().resolve()
    data = recipe.data
    if data.store is not None:
        import os
        return Path(os.path.expandvars(os.path.expanduser(data.store))).resolve() == store
    from tinylm.data.store_cache import sources_store_path  # `sources:` recipes: a store prepared into the cache

    return sources_store_path(data).resolve() == store


def headline(task: str, name: str, result: dict, run_store: bool = False) -> dict:
    """The summary.json keys of one result."""
    if task == "blimp":
        return {f"{slug(name)}_mean": result["mean"]}
    if task == "hellaswag":
        return {"hellaswag_acc": result["acc"], "hellaswag_acc_norm": result["acc_norm"]}
    if task == "lm-eval":
        from tinylm.eval.harness import headline as lm_eval_headline
        return lm_eval_headline(result)
    if run_store:
        return {"val_loss": result["val_loss"], "val_ppl": result["val_ppl"]}
    store = Path(result["store"]).name
    return {f"val_loss[{store}]": result["val_loss"], f"val_ppl[{store}]": result["val_ppl"]}


# ------------------------------------------------------------------ terminal
def format_results(model_line: str, results: list[tuple[str, str, dict]], paradigms: bool = False) -> str:
    """One table: a row per headline number, field breakdown under each minimal-pair set."""
    lines = [model_line, f"{'task':<18} {'metric':<22} {'value':>8}  {'n':>7}  notes"]
    for task, name, r in results:
        if task == "blimp":
            how = r["scoring"]
            lines.append(f"{name:<18} {'mean over paradigms':<22} {r['mean']:>8.4f}  {r['pairs']:>7}  "
                         f"{r['paradigm_count']} paradigms, start {how['start_token']!r}, {r['pairs_per_s']:.0f} pairs/s")
            for field, f in r["fields"].items():
                lines.append(f"{'':<18} {'  ' + field:<22} {f['accuracy']:>8.4f}  {f['pairs']:>7}  "
                             f"{f['paradigms']} paradigms")
            if paradigms:
                for pname, p in r["paradigms"].items():
                    lines.append(f"{'':<18} {'    ' + pname[:40]:<22} {p['accuracy']:>8.4f}  {p['pairs']:>7}")
        elif task == "hellaswag":
            lines.append(f"{name:<18} {'acc':<22} {r['acc']:>8.4f}  {r['items']:>7}  summed log-likelihood")
            lines.append(f"{'':<18} {'acc_norm':<22} {r['acc_norm']:>8.4f}  {r['items']:>7}  per character of the ending")
        elif task == "lm-eval":
            from tinylm.eval.harness import table_lines
            lines += table_lines(name, r)
        else:
            lines.append(f"{name:<18} {'val_loss':<22} {r['val_loss']:>8.4f}  {r['windows']:>7}  "
                         f"windows of {r['seq_len']}, seed {r['seed']} ({r['settings']})")
            lines.append(f"{'':<18} {'val_ppl':<22} {r['val_ppl']:>8.2f}")
    return "\n".join(lines)
