"""lm-evaluation-harness tasks on a tinylm run: ``tinylm eval RUN --lm-eval TASK[,TASK] [--lm-eval-include DIR]``.

The tasks are lm-eval's own (its YAML, its prompts, its metrics); only the model is ours, through the
``TinylmLM`` adapter (``lm_eval_model.py``), so a single model or a mean-logit ensemble is scored by
tinylm's batched scorer exactly as lm-eval's ``HFLM`` scores an exported copy (tested request by request).

Local data, no hub: a folder given with ``--lm-eval-include`` holds task YAMLs whose data are local files,
e.g. ``dataset_path: json`` and ``dataset_kwargs: {data_files: {validation: /path/items.jsonl}}``. A
built-in task (``hellaswag``, ``blimp_adjunct_island``) reads its data set from the Hugging Face hub, as
naming it asks; offline (``HF_DATASETS_OFFLINE=1``) only what the datasets cache already holds.

Everything about the tasks is checked before the model loads (``prepare``): lm-eval installed, the
folder, each name known, each task's data loadable. lm-eval's own errors are many lines; here they end
in one. Results go beside tinylm's own: ``RUN/eval/lm-eval.<task>.json`` (one per task, and per group
where a name is a group), headline numbers ``lm_eval_<task>_<metric>`` in summary.json.
"""

from __future__ import annotations

import contextlib
import difflib
import logging
import math
import sys
from dataclasses import dataclass
from pathlib import Path

from tinylm.errors import UserError
from tinylm.optional import require

FEATURE = "tinylm eval --lm-eval"
log = logging.getLogger(__name__)


@dataclass
class Plan:
    """Validated lm-eval work: the task names, the manager that found them, where from."""

    tasks: list[str]
    manager: object
    include: str | None


def task_names(spec: str) -> list[str]:
    names = [n.strip() for n in str(spec).split(",")]
    if not names or any(not n for n in names):
        raise UserError(f"--lm-eval {spec!r}: give task names separated by commas, e.g. --lm-eval hellaswag,lambada")
    return list(dict.fromkeys(names))


def _first_line(error: BaseException) -> str:
    text = str(error).strip().strip('"').splitlines()
    return (text[0] if text else type(error).__name__)[:200]


def prepare(spec: str, include: str | None = None) -> Plan:
    """Check everything about the tasks before any model is loaded; a ``UserError`` names what is wrong."""
    names = task_names(spec)
    tasks_module = require("lm_eval.tasks", FEATURE)
    if include is not None:
        folder = Path(include).expanduser()
        if not folder.is_dir():
            raise UserError(f"--lm-eval-include {include}: not a folder; give the folder that holds your task YAMLs")
        if not any(folder.rglob("*.yaml")):
            raise UserError(f"--lm-eval-include {include} holds no .yaml task files")
        include = str(folder.resolve())
        # Indexing only the user's folder is instant; lm-eval's thousands of built-in YAMLs take many seconds.
        manager = tasks_module.TaskManager(include_path=include, include_defaults=False)
        if not all(n in manager.all_tasks for n in names):
            manager = tasks_module.TaskManager(include_path=include)
    else:
        manager = tasks_module.TaskManager()
    for name in names:
        if name not in manager.all_tasks:
            close = difflib.get_close_matches(name, manager.all_tasks, n=3)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            where = f" nor in {include}" if include else ""
            raise UserError(f"unknown lm-eval task {name!r}{hint}: not one of lm-eval's tasks{where}; `lm-eval ls "
                            "tasks` lists them, and --lm-eval-include DIR adds the task YAMLs in DIR")
    for name in names:  # loads each task's documents: a missing data file fails here, not after the model
        loaded = _load_quietly(tasks_module, manager, name)
        generating = sorted(t for t, kind in _output_types(loaded).items() if kind == "generate_until")
        if generating:
            raise UserError(f"lm-eval task {', '.join(generating)} generates text (generate_until), which `tinylm eval "
                            "--lm-eval` does not do: choose log-likelihood tasks (multiple choice, perplexity), or "
                            "export the model (`tinylm export`) and run lm_eval --model hf on it")
    return Plan(names, manager, include)


def _load_quietly(tasks_module, manager, name: str):
    """lm-eval's task object(s) for ``name``, without the data sets' progress bars (a check, not the work)."""
    datasets = require("datasets", FEATURE)
    bars = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    try:  # TaskManager.load since lm-eval 0.4.10; get_task_dict before (deprecated since)
        return manager.load([name]) if hasattr(manager, "load") else tasks_module.get_task_dict([name], manager)
    except Exception as e:  # lm-eval and datasets raise many kinds; each is the user's task or data
        raise UserError(f"lm-eval could not load task {name!r}: {_first_line(e)} (check its YAML and data "
                        "files; offline, a hub data set must already be in the datasets cache)") from e
    finally:
        if bars:
            datasets.enable_progress_bars()


def _output_types(loaded) -> dict:
    """{task name: output type} of every task in what lm-eval loaded (groups and dicts of either)."""
    found, stack = {}, [loaded]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack += list(item.values())
        elif isinstance(item, (list, tuple)):
            stack += list(item)
        elif hasattr(item, "OUTPUT_TYPE"):
            found[getattr(item.config, "task", str(item))] = item.OUTPUT_TYPE
        elif hasattr(item, "children"):  # an lm-eval Group
            stack += list(getattr(item, "children") or [])
    return found


def _number(value):
    if isinstance(value, (int, float)) or hasattr(value, "item"):
        value = float(value)
        return value if math.isfinite(value) else None
    return value


def _count(value) -> int | None:
    return None if value is None else int(value)


def _metrics(raw: dict) -> dict:
    """lm-eval's ``"acc,none": 0.25`` keys as ``"acc": 0.25`` (a filter other than none stays: ``acc,flex``)."""
    out = {}
    for key, value in raw.items():
        if key == "alias" or "," not in key:
            continue
        metric, _, filt = key.partition(",")
        out[metric if filt == "none" else f"{metric},{filt}"] = _number(value)
    return out


def adapter(scorer, tokenizer, special_ids: dict, name: str = "tinylm"):
    """The model as lm-eval sees it; an encoder (or a tokenizer without BOS/EOS) is refused here, before
    any scoring."""
    from tinylm.eval.lm_eval_model import TinylmLM

    return TinylmLM(scorer, tokenizer, special_ids, name=name)


@contextlib.contextmanager
def _no_git_describe():
    """lm-eval records the git commit of the working directory by running `git describe`, whose
    "fatal: not a git repository" reaches the user's terminal wherever that is not a repository (and a
    user's unrelated repository says nothing about the model). Its results carry no commit here."""
    modules = [sys.modules.get(name) for name in ("lm_eval.loggers.utils", "lm_eval.evaluator")]  # both imported
    patched = [(m, m.get_git_commit_hash) for m in modules if hasattr(m, "get_git_commit_hash")]  # by then
    for module, _ in patched:  # the evaluator holds its own reference to the function
        module.get_git_commit_hash = lambda: None
    try:
        yield
    finally:
        for module, real in patched:
            module.get_git_commit_hash = real


def run(plan: Plan, lm, limit: int | None = None) -> list[tuple[str, str, dict]]:
    """Score every task of ``plan`` with ``lm`` (``adapter``); ``("lm-eval", result name, result)`` per task
    and group."""
    evaluator = require("lm_eval.evaluator", FEATURE)
    scorer = lm.scorer
    logging.getLogger("lm_eval").setLevel(max(logging.WARNING, logging.getLogger("lm_eval").level))
    try:
        with _no_git_describe():
            out = evaluator.simple_evaluate(model=lm, tasks=plan.tasks, task_manager=plan.manager, limit=limit,
                                            log_samples=False)
    except UserError:
        raise
    except Exception as e:
        raise UserError(f"lm-eval failed on {', '.join(plan.tasks)}: {_first_line(e)}") from e
    version = getattr(require("lm_eval", FEATURE), "__version__", None)
    results = []
    for section in ("results", "groups"):
        for task, raw in (out.get(section) or {}).items():
            if section == "groups" and task in out.get("results", {}):
                continue
            r = {"task": task, "kind": "group" if section == "groups" else "task", "metrics": _metrics(raw),
                 "samples": _count((out.get("n-samples") or {}).get(task, {}).get("effective")),
                 "version": _number((out.get("versions") or {}).get(task)),
                 "higher_is_better": (out.get("higher_is_better") or {}).get(task),
                 "limit": limit, "include": plan.include, "lm_eval_version": version,
                 "scoring": {"model": "tinylm's scorer through lm-eval's TemplateLM (HFLM's request arithmetic)",
                             "start_token_id": lm.prefix_token_id, "precision": scorer.precision}}
            results.append(("lm-eval", f"lm-eval.{task}", r))
    return results


def headline(result: dict) -> dict:
    """summary.json keys: ``lm_eval_<task>_<metric>`` for each metric that is a number (not its stderr)."""
    from tinylm.eval.report import slug

    return {f"lm_eval_{slug(result['task'])}_{slug(metric)}": value for metric, value in result["metrics"].items()
            if isinstance(value, float) and "_stderr" not in metric}


def table_lines(name: str, result: dict) -> list[str]:
    lines = []
    for metric, value in result["metrics"].items():
        if "_stderr" in metric or not isinstance(value, float):
            continue
        stderr = result["metrics"].get(metric.replace(",", "_stderr,", 1) if "," in metric else f"{metric}_stderr")
        note = f"± {stderr:.4f} (lm-eval)" if isinstance(stderr, float) else "lm-eval"
        samples = result["samples"] if result["samples"] is not None else ""
        lines.append(f"{(name if not lines else ''):<18} {metric:<22} {value:>8.4f}  {samples:>7}  {note}")
    return lines or [f"{name:<18} (no numeric metric)"]
