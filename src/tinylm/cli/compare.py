"""`tinylm compare RUNS... [--corr METRIC METRIC] [--metrics M ...] [--x flops|steps|tokens] [--json]`
`tinylm compare A B --paired [--resamples N] [--seed S] [--confidence C] [--json]`

Puts runs side by side on their summary.json numbers (val_loss, blimp, hellaswag_acc, ...; run
`tinylm eval` first for the benchmark ones). With --corr A B it gives Pearson's r and R² between
the two over the runs that have both: does validation loss predict BLiMP (BabyLlama-2 fig. 2,
FORGETTER's one-to-one claim)? With --x it draws validation loss (and HellaSwag accuracy where
`tinylm eval` scored checkpoints) against cumulative FLOPs, steps or tokens, and marks where each
run has spent the reference run's compute (the incremental-training paper's figures 1 and 2):
the equal-compute points, also printed. A directory of runs expands to the runs in it; among
several paths (`runs/*`), one that is not a run, such as an ensemble's eval output, is left out
with a note.

With --paired it compares two runs item by item on the per-item results `tinylm eval` wrote
(RUN/eval/*.items.jsonl): per task (BLiMP: its mean over paradigms and each field) the accuracy
difference B - A, an exact McNemar test on the items they disagree on, and a paired bootstrap
interval (resampled within BLiMP paradigms). A or B may also be a folder of eval results (an older
checkpoint's RUN/eval/step-N, an --out) or a seed study (compared seed-averaged).
"""

from __future__ import annotations

import json


def register(sub) -> None:
    p = sub.add_parser("compare", help="compare runs; correlate two metrics (R²) across them", description=__doc__)
    p.add_argument("runs", nargs="+", metavar="RUN", help="run directories (or directories of runs)")
    p.add_argument("--corr", nargs=2, metavar=("A", "B"), help="correlate two metrics, e.g. --corr val_loss blimp")
    p.add_argument("--metrics", nargs="+", default=["val_loss", "blimp", "hellaswag_acc", "hellaswag_acc_norm"],
                   help="columns of the table (summary.json keys or blimp/hellaswag)")
    p.add_argument("--x", choices=("flops", "steps", "tokens"),
                   help="plot curves against this axis and give the equal-compute points")
    p.add_argument("--reference", metavar="RUN", help="with --x: the run whose compute the others are matched to "
                   "(default: the first)")
    p.add_argument("--at", type=float, metavar="STEP", help="with --x: the reference's step (default: its last)")
    p.add_argument("--plot", metavar="FILE", help="with --x: where to draw (default: compare-<x>.png)")
    p.add_argument("--paired", action="store_true",
                   help="A B: item by item on the tasks both were evaluated on: accuracy B - A, exact McNemar p and "
                        "a paired bootstrap interval (per field for BLiMP; seed studies compare seed-averaged)")
    p.add_argument("--resamples", type=int, default=10_000, help="with --paired: bootstrap resamples (default 10000)")
    p.add_argument("--seed", type=int, default=0, help="with --paired: the bootstrap's seed (default 0)")
    p.add_argument("--confidence", type=float, default=0.95, help="with --paired: interval level (default 0.95)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run)


def _fmt(value, width: int = 12) -> str:
    return f"{value:>{width}.4f}" if value is not None else f"{'-':>{width}}"


def run(args) -> int:
    import sys

    from tinylm.eval.compare import correlate, find_runs, table

    if args.paired:
        return _paired(args)
    if args.x:
        from tinylm.output_location import check_output_file
        check_output_file(args.plot or f"compare-{args.x}.png", "--plot")
    skipped: list[str] = []  # `compare runs/*` also matches an eval output or a plot: a note each, not an error
    runs = find_runs(args.runs, skipped)
    for note in skipped:
        print(f"tinylm compare: {note}", file=sys.stderr)
    if args.x:
        return _curves(args, runs)
    if args.corr:
        a, b = args.corr
        result = correlate(runs, a, b)
        if args.json:
            print(json.dumps(result, indent=1))
            return 0
        width = max(len(r["run"]) for r in result["runs"])
        ca, cb = max(10, len(a)), max(10, len(b))
        print(f"{'run':<{width}} {a:>{ca}} {b:>{cb}}")
        for r in result["runs"]:
            print(f"{r['run']:<{width}} {_fmt(r[a], ca)} {_fmt(r[b], cb)}")
        for s in result["skipped"]:
            print(f"{s['run']:<{width}} (left out: no {' or '.join(s['missing'])})")
        print(f"Pearson r = {result['pearson_r']:+.4f}   R² = {result['r2']:.4f}   n = {result['n']} runs")
        return 0
    rows = table(runs, args.metrics)
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    width = max(len(r["run"]) for r in rows)
    cols = [max(10, len(m)) for m in args.metrics]
    print(f"{'run':<{width}} " + " ".join(f"{m:>{c}}" for m, c in zip(args.metrics, cols)))
    for r in rows:
        print(f"{r['run']:<{width}} " + " ".join(_fmt(r[m], c) for m, c in zip(args.metrics, cols)))
    return 0


def _curves(args, runs) -> int:
    from pathlib import Path

    from tinylm.eval.compare import compute_curves, find_runs, plot_curves

    reference = find_runs([args.reference])[0] if args.reference else None
    data = compute_curves(runs, args.x, reference, args.at)
    path = plot_curves(data, Path(args.plot or f"compare-{args.x}.png"))
    if args.json:
        print(json.dumps({**data, "plot": str(path)}, indent=1))
        return 0
    rows = data["runs"]
    width = max(len(r["label"]) for r in rows)
    label = next(r["label"] for r in rows if r["run"] == data["reference"])
    print(f"equal compute: {data['reference_flops']:.4g} FLOPs = {label} at step {data['reference_step']:g}")
    print(f"{'run':<{width}} {'steps':>8} {'FLOPs':>10} {'MFU':>6} {'equal step':>11} {'val_loss':>10} "
          f"{'hellaswag':>10}")
    for r in rows:
        e = r["equal_compute"]
        step = f"{e['step']:.1f}" if e["step"] is not None else "not reached"
        mfu = f"{r['mfu']:.1%}" if r["mfu"] is not None else "-"
        print(f"{r['label']:<{width}} {r['steps']:>8} {r['flops']:>10.3g} {mfu:>6} {step:>11} "
              f"{_fmt(e['val_loss'], 10)} {_fmt(e['hellaswag_acc'], 10)}")
    print(f"plot: {path}")
    return 0


def _paired(args) -> int:
    import sys

    from tinylm.errors import UserError
    from tinylm.runs.paired import compare_paired

    if len(args.runs) != 2:
        raise UserError(f"--paired compares two runs, A and B; {len(args.runs)} given: tinylm compare A B --paired")
    if args.corr or args.x:
        raise UserError("--paired cannot be combined with --corr or --x: run them separately")
    result = compare_paired(*args.runs, resamples=args.resamples, seed=args.seed, confidence=args.confidence)
    for note in result["notes"]:
        print(f"tinylm compare: {note}", file=sys.stderr)
    if args.json:
        print(json.dumps(result, indent=1))
        return 0
    print(format_paired(result))
    return 0


def _side(name: str, side: dict) -> str:
    k = len(side["members"])
    return f"{name} = {side['path']}" + (f" ({k} seeds, averaged per item; McNemar on majority votes)" if k > 1 else "")


def format_paired(result: dict) -> str:
    level = f"{result['confidence'] * 100:g}%"
    lines = [f"paired comparison, B - A: {_side('A', result['a'])}; {_side('B', result['b'])}",
             f"{result['resamples']} paired bootstrap resamples (seed {result['seed']}, percentile, BLiMP within "
             "paradigms); b = items only A gets right, c = only B; McNemar: exact two-sided on b, c",
             f"{'task':<16} {'metric':<22} {'n':>6} {'A':>7} {'B':>7} {'B-A':>8}  {level + ' CI':<19} {'b':>5} "
             f"{'c':>5} {'McNemar p':>10}"]
    for name, task in result["tasks"].items():
        for i, r in enumerate(task["rows"]):
            metric = ("  " + r["metric"]) if r["level"] == "field" else r["metric"]
            ci = f"[{r['ci'][0]:+.4f}, {r['ci'][1]:+.4f}]"
            lines.append(f"{name if i == 0 else '':<16} {metric[:22]:<22} {r['n']:>6} {r['a']:>7.4f} {r['b']:>7.4f} "
                         f"{r['difference']:>+8.4f}  {ci:<19} {r['a_only']:>5} {r['b_only']:>5} "
                         f"{r['mcnemar_p']:>10.4g}")
    split = [f"{name} {r['metric']} {r['split_votes']}" for name, task in result["tasks"].items()
             for r in task["rows"] if r["level"] == "task" and r["split_votes"]]
    if split:
        lines.append("items whose seeds split evenly (no majority vote: in neither b nor c): " + ", ".join(split))
    return "\n".join(lines)
