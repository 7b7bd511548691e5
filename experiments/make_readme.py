"""Writes experiments/README.md from the result files in experiments/results, so the page can never be
typed by hand or drift from the numbers: the claim rows come from claims.py, the verdicts from the one
rule in verdict.py, the plots from the PNGs that exist, the rerun commands from each JSON's "command"
or its script's docstring. Only INTRO below is hand-written.

    python experiments/make_readme.py [--check]
--check writes nothing and exits 1 (one line) when the committed README differs from what it would write.
"""

from __future__ import annotations

import argparse
import ast
import json
import re
import sys
from pathlib import Path

from claims import PAPER, all_rows, is_regime, load_results  # beside this file (experiments/ on sys.path), as the scripts' `common`
from verdict import RULE

HERE = Path(__file__).resolve().parent

COMMAND = "python experiments/make_readme.py"
TITLE = "# tinylm experiments: the papers' claims, re-measured"
INTRO = (
    "The five papers behind tinylm's curricula (FORGETTER, incremental layer-wise training, tiny language "
    "models, BabyLlama-2, GAFF) each make claims about their methods. The scripts in this directory re-measure "
    "them at small scale, over several seeds, and write their numbers to `results/*.json` (plots to "
    "`results/*.png`). Below, each claim has the paper's own figure, tinylm's regime and figure (mean ± sample "
    "std over seeds, n), and a verdict given by one rule from the per-seed values. Where an older tiny "
    "result and a newer one test the same claim, both are listed under their experiment's name. This page is "
    f"generated: regenerate it with `{COMMAND}` from the repository root after a results file changes; "
    f"`{COMMAND} --check` fails when it is stale. Do not edit it by hand.")


def cell(text: str) -> str:
    """Text safe inside a Markdown table cell."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def anchor(claim_id: str) -> str:
    """GitHub's anchor for the heading "### `claim_id`"."""
    return re.sub(r"[^\w\- ]", "", claim_id.lower()).replace(" ", "-")


def usage_line(script: Path) -> str | None:
    """The line of a script's docstring that shows how to run it (it names experiments/<script>)."""
    doc = ast.get_docstring(ast.parse(script.read_text(encoding="utf-8"))) or ""
    return next((line.strip() for line in doc.splitlines() if f"experiments/{script.name}" in line), None)


def rerun(result: dict, scripts_dir: Path) -> list[str]:
    """How to rerun an experiment: the JSON's "command", and its script's usage line unless that command runs it."""
    script = Path(scripts_dir) / Path(result.get("script") or result["experiment"].replace("-", "_") + ".py").name
    usage = usage_line(script) if script.is_file() else None
    command = result.get("command")
    lines = [f"the command it recorded: `{command}`"] if command else []
    if usage and not (command and script.name in command):
        lines.append(f"its script: `{usage}`")
    return lines or [f"no \"command\" in the JSON and no {script.name} with a usage line"]


def regime_section(results_dir: Path) -> list[str]:
    """The ladders: each regime's rule, its rungs and the length it chose, measured before any comparison."""
    ladders = [(name, r) for name, r in load_results(results_dir) if is_regime(r)]
    if not ladders:
        return []
    out = ["", "## Regimes, measured before comparing", "",
           "Each comparison below is made at a training length chosen by a ladder of runs first "
           "(`experiments/regime.py`)."]
    for name, r in ladders:
        if "drop" in (r["rungs"][0] if r["rungs"] else {}):
            state = "flat: reached" if r["reached"] else "flat: **not reached** within the ladder (its last rung chosen)"
            rungs = "; ".join(f"{x['n']} → {2 * x['n']}: {x['val_loss']:.3f} → {x['val_loss_doubled']:.3f} "
                              f"({'−' if x['drop'] >= 0 else '+'}{abs(x['drop']):.3f})" for x in r["rungs"])
        else:
            state = "at the ladder's edge" if r["at_edge"] else "inside the ladder"
            rungs = "; ".join(f"N {x['n']}: {x['final_val_loss']:.3f}" for x in r["rungs"])
        family = r["experiment"].removesuffix("-ladder")
        rungs_n = {x["n"] for x in r["rungs"]}
        used = [f"{o['experiment']} ({other}) at N = {k}" for other, o in load_results(results_dir)
                if _measured_by(o, name, family) for k in sorted(_compared_lengths(o) & rungs_n)
                if "regime" in o or k == r["n"]]  # a regime script's own rung, or another at the chosen N
        if used:
            state += "; compared: " + ", ".join(used)
        plot = Path(name).with_suffix(".png").name
        link = f" Plot: [{plot}]({results_dir.name}/{plot})." if (results_dir / plot).is_file() else ""
        model = r.get("model")
        model = f" of {model['name'] if isinstance(model, dict) else model}" if model else ""
        out += ["", f"- **{r['experiment']}**{model} ([`results/{name}`]({results_dir.name}/{name})): {r['rule']}; "
                    f"chosen N = {r['n']} ({state}). Rungs (validation loss): {rungs}.{link}"]
    return out


def _measured_by(result: dict, ladder: str, family: str) -> bool:
    """Whether a comparison's length came from this ladder: the ladder file it names, else (results that name
    none) any ladder of its family (`grow-ladder.json` for grow-tiny)."""
    if is_regime(result):
        return False
    if "ladder" in result:
        return result["ladder"] == ladder
    return result.get("experiment", "").startswith(family)


def _compared_lengths(result: dict) -> set:
    """The lengths a comparison was made at, as its JSON records them."""
    keys = ("n_steps_normal", "n_steps_baseline")
    return {result[k] for k in keys if k in result} | {b.get("pretrain_steps") for b in result.get("by_ws", [])}


def render(results_dir: Path, scripts_dir: Path = HERE) -> str:
    """The whole README for the results in `results_dir` (links relative to its parent)."""
    results_dir = Path(results_dir)
    rows, silent = all_rows(results_dir)
    results = {name: json.loads((results_dir / name).read_text(encoding="utf-8"))
               for name in {r["source"] for r in rows}}
    order = {claim_id: i for i, claim_id in enumerate(PAPER)}
    rows.sort(key=lambda r: order[r["id"]])  # stable: within a claim, files by name, then the extractor's order
    out = [TITLE, "", INTRO, "", "## Verdict rule", "", RULE, *regime_section(results_dir), "", "## Summary", "",
           "| claim | paper | regime | tinylm | verdict |", "| --- | --- | --- | --- | --- |"]
    seen = set()
    for r in rows:
        paper = "(as above)" if r["id"] in seen else r["paper"]
        seen.add(r["id"])
        out.append(f"| [`{r['id']}`](#{anchor(r['id'])}): {cell(r['claim'])} | {cell(paper)} | "
                   f"**{cell(r['experiment'])}**: {cell(r['regime'])} | {cell(r['tinylm'])} | "
                   f"**{cell(r['verdict'])}** |")
    out += ["", "## Claims"]
    for claim_id in PAPER:
        mine = [r for r in rows if r["id"] == claim_id]
        if not mine:
            continue
        out += ["", f"### `{claim_id}`", "", f"**Paper.** {PAPER[claim_id]}"]
        for source in dict.fromkeys(r["source"] for r in mine):
            group = [r for r in mine if r["source"] == source]
            out += ["", f"**{group[0]['experiment']}** ([`results/{source}`]({results_dir.name}/{source}))", ""]
            regimes = list(dict.fromkeys(r["regime"] for r in group))
            if len(regimes) == 1:
                out.append(f"- Regime: {regimes[0]}")
            for r in group:
                regime = "" if len(regimes) == 1 else f" Regime: {r['regime']}."
                out.append(f"- {r['claim']}{regime} tinylm: {r['tinylm']}. **{r['verdict']}**: {r['why']}.")
            plots = list(dict.fromkeys(p for r in group for p in r["plots"]))
            present = [p for p in plots if (results_dir / p).is_file()]
            absent = [p for p in plots if p not in present]
            if present:
                out.append("- Plots: " + ", ".join(f"[{p}]({results_dir.name}/{p})" for p in present))
            if absent:
                out.append(f"- Plots named but not in `{results_dir.name}/`: " + ", ".join(absent))
            out.append("- Rerun: " + "; ".join(rerun(results[source], scripts_dir)))
    waiting = [claim_id for claim_id in PAPER if claim_id not in seen]
    if waiting:
        out += ["", "## Claims without a result yet", ""]
        out += [f"- `{claim_id}`: {PAPER[claim_id]}" for claim_id in waiting]
    if silent:
        out += ["", "## Results without claims", ""]
        out += [f"- `{results_dir.name}/{name}` (experiment {result.get('experiment')!r}): no extractor in "
                "claims.py and no \"claims\" list" for name, result in silent]
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--check", action="store_true", help="exit 1 when the README differs from what would be written")
    p.add_argument("--results", type=Path, default=HERE / "results")
    p.add_argument("--out", type=Path, default=HERE / "README.md")
    args = p.parse_args(argv)
    try:
        text = render(args.results)
    except ValueError as e:
        print(f"make_readme: {e}", file=sys.stderr)
        return 2
    if args.check:
        if not args.out.is_file() or args.out.read_text(encoding="utf-8") != text:
            print(f"{args.out} is stale: run `{COMMAND}` and commit it", file=sys.stderr)
            return 1
        return 0
    args.out.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
