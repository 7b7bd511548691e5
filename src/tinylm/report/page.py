"""The report's HTML: one section per part of a run's story, filled into the package's template.

Sections appear only where there is something to show (no BLiMP table for a run never evaluated, no
seed spread without a seed study, no equal-compute points for a single run). Everything the runs wrote
is escaped; the pictures are PNGs inlined as `data:` URIs, so the file opens anywhere, offline.
"""

from __future__ import annotations

import base64
import html
import string

from tinylm.package_files import package_file
from tinylm.report import plots
from tinylm.report.events import STYLES, describe
from tinylm.report.facts import RunFacts, SeedStudy, all_runs
from tinylm.report.harness_table import lm_eval_table
from tinylm.report.recipe_diff import MISSING, differences

AXIS_NAMES = {"step": "steps", "tokens": "tokens", "flops": "FLOPs", "words": "words"}


def axes(runs: list[RunFacts]) -> dict[str, str]:
    """The x-axes the loss is drawn against: words only where every run logs them (one run without would
    be missing from that picture, not shown as worse)."""
    every = all(r.logs_words() for r in runs)
    return {x: name for x, name in AXIS_NAMES.items() if x != "words" or every}


def _e(value) -> str:
    return html.escape(str(value), quote=True)


def _num(value, digits: int = 4) -> str:
    if isinstance(value, bool) or value is None:
        return "-" if value is None else str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if abs(value) >= 1e5 or (value and abs(value) < 1e-3):
            return f"{value:.{digits}g}"
        return f"{value:,.1f}" if abs(value) >= 100 else f"{value:.{digits}f}"
    return str(value)


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _img(png: bytes, alt: str) -> str:
    return f'<img alt="{_e(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'


def _table(header: list[str], rows: list[list]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = []
    for row in rows:
        cells = []
        for cell in row:
            if cell is None or cell is MISSING:
                cells.append('<td class="missing">-</td>')
            elif isinstance(cell, (int, float)) and not isinstance(cell, bool):
                cells.append(f'<td class="num">{_e(_num(cell))}</td>')
            else:
                cells.append(f"<td>{_e(cell)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def _yaml(config: dict) -> str:
    import yaml

    return yaml.safe_dump(config, sort_keys=False, allow_unicode=True)


# ------------------------------------------------------------------------------------------ sections
def overview(runs: list[RunFacts]) -> str:
    rows, speed = [], []
    for r in runs:
        t, model = r.throughput(), r.config.get("model") or {}
        methods = ", ".join(next(iter(m)) if isinstance(m, dict) else str(m) for m in r.config.get("methods") or [])
        steps = f"{t.get('steps', '-')} of {r.summary.get('total_steps', '?')}" if r.summary else "(no summary.json)"
        rows.append([r.label, r.config.get("name"), model.get("name"), methods or "none", steps, t.get("tokens"),
                     r.words(), t.get("flops"), t.get("parameters"), r.summary.get("val_loss"),
                     "yes" if r.summary.get("complete") else "no"])
        wall = f"{t['wall_s']:,.1f}" if _number(t.get("wall_s")) else None
        speed.append([r.label, wall, t.get("tokens_per_s"), t.get("flops_per_s"),
                      f"{t['mfu']:.1%}" if "mfu" in t else None, t.get("device"), t.get("precision"),
                      t.get("processes")])
    return ("<h2>At a glance</h2>" +
            _table(["run", "recipe", "model", "methods", "steps", "tokens", "words", "FLOPs", "parameters", "val loss",
                    "complete"], rows) +
            "<h3>Throughput</h3>" +
            _table(["run", "wall s", "tokens/s", "FLOP/s", "MFU", "device", "precision", "processes"], speed) +
            '<p class="note">tokens/s, FLOP/s and MFU: the median over the log lines (the first steps warm up); '
            "MFU only where the device's peak is known. words: of training data seen, as BabyLM counts them "
            "(whitespace words of the source text); - where the run's data does not count words.</p>")


def curves(runs: list[RunFacts]) -> str:
    if not any(r.series("loss") or r.series("val_loss") for r in runs):
        return ("<h2>Loss</h2><p>No loss logged yet: the runs stopped before their first log line "
                "(<code>train.log_every</code>).</p>")
    choice = "".join(f'<label><input type="radio" name="axis" value="{x}"{" checked" if x == "step" else ""}> '
                     f"{name}</label>" for x, name in axes(runs).items())
    figures = "".join(f'<div class="curve" data-axis="{x}"{"" if x == "step" else " hidden"}>'
                      f"{_img(plots.loss_figure(runs, x), f'loss against {name}')}</div>"
                      for x, name in axes(runs).items())
    rows = [[r.label, m["step"], STYLES[m["kind"]].label, m["record"].get("event"), describe(m["record"])]
            for r in runs for m in plots.run_marks(r)]
    table = (f"<details open><summary>the marked events ({len(rows)})</summary>"
             + _table(["run", "step", "marked as", "event", "details"], rows) + "</details>") if rows else \
        '<p class="note">No method event was logged.</p>'
    mechanics = [[r.label, e.get("step"), e.get("event"), describe(e)] for r in runs for e in r.events]
    every = (f"<details><summary>every event line of metrics.jsonl ({len(mechanics)})</summary>"
             + _table(["run", "step", "event", "details"], mechanics) + "</details>") if mechanics else ""
    return ("<h2>Loss</h2><div class=\"axis-choice\">against: " + choice + "</div>" + figures +
            '<p class="note">Lines: training loss at each log step; circles: validation loss (the same fixed '
            "windows for every run). Markers: the curriculum's events, where they happened.</p>" + _distill(runs)
            + table + every)


def _distill(runs: list[RunFacts]) -> str:
    """A distilled run's loss mixes its two terms (on other scales): their last logged values, said apart."""
    said = []
    for r in runs:
        ce, kl = r.series("distill_ce"), r.series("distill_kl")
        if ce and kl:
            said.append(f"{r.label} at step {ce[-1][0]:g}: cross-entropy on the data {ce[-1][1]:.4f}, KL to the "
                        f"teachers {kl[-1][1]:.4f} (at the distillation temperature)")
    return f'<p class="note">Distillation: {_e("; ".join(said))}.</p>' if said else ""


def recipes(runs: list[RunFacts]) -> str:
    if len(runs) == 1:
        return f"<h2>Recipe</h2><pre>{_e(_yaml(runs[0].config))}</pre>"
    diff = differences([r.config for r in runs])
    rows = [[key, *[("(not set)" if v is MISSING else _yaml_value(v)) for v in values]] for key, values in diff]
    table = _table(["key", *[r.label for r in runs]], rows) if rows else "<p>The recipes are identical.</p>"
    full = "".join(f"<details><summary>{_e(r.label)}: the whole recipe</summary><pre>{_e(_yaml(r.config))}</pre>"
                   "</details>" for r in runs)
    return "<h2>Recipes: what differs</h2>" + table + full


def _yaml_value(value) -> str:
    return "null" if value is None else str(value)


def _scored(value, n=None, stderr=None) -> str | None:
    """An accuracy with what it stands on: `0.5500 ± 0.1141 (n=20)` (a --limit 20 result says so)."""
    if not _number(value):
        return None
    return f"{value:.4f}" + (f" ± {stderr:.4f}" if _number(stderr) else "") + (f" (n={n})" if _number(n) else "")


def evaluations(runs: list[RunFacts]) -> str:
    rows: dict[str, dict[str, str | None]] = {}
    for r in runs:
        for kind, name, result in r.evals:
            if kind == "blimp":
                rows.setdefault(f"{name}: mean over paradigms", {})[r.label] = _scored(result["mean"], result.get("pairs"))
                for field, f in sorted(result["fields"].items()):
                    rows.setdefault(f"{name}: {field}", {})[r.label] = _scored(f.get("accuracy"), f.get("pairs"))
            elif kind == "lm-eval":
                continue  # a table of its own (lm_eval), its metrics are many and carry their stderr
            elif kind == "hellaswag":
                for metric in ("acc", "acc_norm"):
                    rows.setdefault(f"{name}: {metric}", {})[r.label] = _scored(
                        result[metric], result.get("items"), result.get(f"{metric}_stderr"))
            else:
                rows.setdefault(f"{name}: validation loss", {})[r.label] = result["val_loss"]
    harness = lm_eval(runs)
    out = "<h2>Evaluation</h2>" if rows or harness else ""
    if rows:
        out += (_table(["result", *[r.label for r in runs]], [[k, *[v.get(r.label) for r in runs]] for k, v in rows.items()])
                +
                '<p class="note">BLiMP: accuracy per field and the unweighted mean over paradigms. HellaSwag: acc '
                "(summed log-likelihood of the ending) and acc_norm (per character of the ending), ± the standard error "
                "where the file has one; n: the pairs or items scored.</p>")
    out += harness
    tuned = [[r.label, where, *_finetune_row(report)] for r in runs for where, report in r.finetunes]
    if tuned:
        out += ("<h2>Fine-tuning</h2>" + _table(["run", "file", "task", "pretrained", "from scratch", "gap",
                                                  "majority baseline"], tuned))
    return out


def lm_eval(runs: list[RunFacts]) -> str:
    found = lm_eval_table(runs)
    if found is None:
        return ""
    return ("<h3>lm-evaluation-harness</h3>" + _table(*found) +
            '<p class="note">From <code>tinylm eval --lm-eval TASK</code> (RUN/eval/lm-eval.&lt;task&gt;.json): '
            "lm-eval's own metrics and its bootstrap standard error, where it gives one.</p>")


def _finetune_row(report: dict) -> list:
    def arm(name):
        a = report.get(name)
        if not isinstance(a, dict) or a.get("mean") is None:
            return None
        return f"{a['mean']:.4f}" + (f" ± {a['std']:.4f}" if a.get("std") is not None else "") + f" (n={a.get('n')})"
    task = report.get("task")
    task = task.get("name") if isinstance(task, dict) else task
    baseline = report.get("baseline")
    return [task, arm("pretrained"), arm("scratch"), report.get("gap"),
            baseline.get("accuracy") if isinstance(baseline, dict) else None]


def seeds(studies: list[SeedStudy]) -> str:
    if not studies:
        return ""
    out, groups = "<h2>Seeds</h2>", []
    for study in studies:
        values = [r.summary.get("val_loss") for r in study.runs if r.summary.get("complete")]
        values = [float(v) for v in values if isinstance(v, (int, float))]
        groups.append((study.label, values))
        rows = [[r.path.name, r.summary.get("steps"), r.summary.get("val_loss"),
                 min((v for _, v in r.series("val_loss")), default=None), "yes" if r.summary.get("complete") else "no"]
                for r in study.runs]
        from tinylm.runs.stats import describe as stats

        d = stats(values)
        spread = (f"{d['mean']:.4f} ± {d['std']:.4f}" if d["std"] is not None else
                  f"{d['mean']:.4f} (one seed: no spread)") if d["n"] else "no finished seed"
        varied = study.summary.get("varied")
        varied = f"; the seed sets {', '.join(map(str, varied))}" if isinstance(varied, list) and varied else ""
        out += (f"<h3>{_e(study.label)}: final validation loss {_e(spread)} (mean ± sample std, n={d['n']})</h3>"
                f'<p class="note">{len(study.runs)} seed runs{_e(varied)}.</p>'
                + _table(["seed run", "steps", "val loss", "best val loss", "complete"], rows))
    if any(values for _, values in groups):
        out += _img(plots.spread_figure(groups, "final validation loss"), "validation loss over seeds")
    return out


def equal_compute(runs: list[RunFacts]) -> str:
    if len(runs) < 2:
        return ""
    found = plots.equal_compute(runs)
    if found is None:
        return ""
    data, png = found
    labels = {str(r.path): r.label for r in runs}
    rows = []
    for r in data["runs"]:
        e = r["equal_compute"]
        rows.append([labels.get(r["run"], r["label"]), r["steps"], r["flops"],
                     f"{e['step']:.1f}" if e["step"] is not None else "not reached", e["val_loss"]])
    reference = labels.get(data["reference"], data["reference"])
    return (f"<h2>At equal compute</h2><p>Each run at the FLOPs {_e(reference)} spent by its step "
            f"{_e(_num(data['reference_step']))} ({_e(_num(data['reference_flops']))} FLOPs): the step it had reached "
            "there and its validation loss (linear between evaluations).</p>"
            + _table(["run", "steps", "FLOPs", "equal-compute step", "val loss there"], rows)
            + _img(png, "validation loss against FLOPs, equal-compute points"))


def samples(runs: list[RunFacts]) -> str:
    shown = [(r.label, text, how) for r in runs for text, how in r.samples()]
    if not shown:
        return ""
    return "<h2>Generated text</h2>" + "".join(f"<h3>{_e(label)}</h3><pre class=\"sample\">{_e(text)}</pre>"
                                                + (f'<p class="note">{_e(how)}</p>' if how else "")
                                                for label, text, how in shown)


def render(entries: list[RunFacts | SeedStudy]) -> str:
    runs = all_runs(entries)
    body = "".join([overview(runs), curves(runs), recipes(runs), evaluations(runs),
                    seeds([e for e in entries if isinstance(e, SeedStudy)]),
                    # the seeds of one study spend the same FLOPs a step: nothing to compare at equal compute
                    equal_compute(runs) if len(entries) > 1 else "", samples(runs)])
    title = "tinylm report: " + ", ".join(e.label for e in entries)
    template = string.Template(package_file("assets", "report", "page.html").read_text(encoding="utf-8"))
    return template.substitute(title=_e(title), sources=_e(", ".join(str(e.path) for e in entries)), body=body)
