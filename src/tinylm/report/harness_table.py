"""lm-evaluation-harness results in a report: `tinylm eval RUN --lm-eval TASK` leaves RUN/eval/lm-eval.<task>.json.

Each file holds lm-eval's own metrics for one task (or group) under the names tinylm/eval/harness.py
`_metrics` gives them: `acc`, `acc_norm`, a filtered `acc,flex`, and beside each the bootstrap standard
error lm-eval computed (`acc_stderr`, `acc_stderr,flex`; "N/A" where it gave none). A reader wants the
value with its error, so a stderr is never a row of its own: for one run the table is task, metric,
value, stderr, items; for several, one column per run holding "value ± stderr (n=items)", side by side.
"""

from __future__ import annotations

from tinylm.report.facts import RunFacts


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def stderr_key(metric: str) -> str:
    """lm-eval's name for a metric's standard error: acc -> acc_stderr, acc,flex -> acc_stderr,flex."""
    name, comma, filt = metric.partition(",")
    return f"{name}_stderr{comma}{filt}"


def metrics(result: dict) -> list[tuple[str, float, float | None]]:
    """(metric, value, stderr or None) of one result file, its numeric metrics in file order."""
    found = result.get("metrics") or {}
    return [(m, v, found[stderr_key(m)] if _number(found.get(stderr_key(m))) else None)
            for m, v in found.items() if "_stderr" not in m and _number(v)]


def lm_eval_table(runs: list[RunFacts]) -> tuple[list[str], list[list]] | None:
    """(header, rows) of the runs' lm-eval results; None when no run has one."""
    found: dict[tuple[str, str], dict[str, tuple]] = {}
    for r in runs:
        for kind, _, result in r.evals:
            if kind == "lm-eval":
                for metric, value, stderr in metrics(result):
                    found.setdefault((result["task"], metric), {})[r.label] = (value, stderr, result.get("samples"))
    if not found:
        return None
    if len(runs) == 1:
        return ["task", "metric", "value", "stderr", "items"], [[task, metric, *per_run[runs[0].label]]
                                                                 for (task, metric), per_run in found.items()]

    def cell(entry):
        if entry is None:
            return None
        value, stderr, n = entry
        return f"{value:.4f}" + (f" ± {stderr:.4f}" if stderr is not None else "") + (f" (n={n})" if n else "")

    return (["task", "metric", *[r.label for r in runs]],
            [[task, metric, *[cell(per_run.get(r.label)) for r in runs]] for (task, metric), per_run in found.items()])
