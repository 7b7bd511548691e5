"""`tinylm report RUN... [--out report.html]`

Writes one self-contained HTML page (pictures embedded, nothing loaded from the network) that tells
the runs' story: the resolved recipe, or for several runs the keys their recipes differ in; training
and validation loss against steps, tokens, FLOPs (and words, where every run counts them) with every curriculum event marked (sleeps,
rollbacks, forgetting, grow stages, distillation); the results `tinylm eval` and `tinylm finetune` left
(BLiMP per field and mean, HellaSwag acc and acc_norm, lm-evaluation-harness metrics with their
stderr, validation loss, fine-tuning accuracy);
throughput and MFU; for a seed study (`tinylm train --seeds --out DIR`) the validation loss as
mean ± std with the spread plot; for several runs, where each stands at equal compute. Among several
paths (a glob such as `runs/*`), one that is not a run (a plot, an ensemble's eval output) is left out
with a note on stderr, as `tinylm compare` does.
"""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("report", help="one self-contained HTML page of runs: curves, events, recipes, results",
                       description=__doc__)
    p.add_argument("runs", nargs="+", metavar="RUN", help="run directories, or seed studies (tinylm train --seeds); "
                   "among several (runs/*), what is not a run is left out with a note")
    p.add_argument("--out", default="report.html", help="the HTML file to write (default: report.html)")
    p.set_defaults(func=run)


def run(args) -> int:
    from tinylm.report.build import write_report

    import sys

    skipped: list[str] = []
    path = write_report(args.runs, args.out, skipped)
    for note in skipped:
        print(f"tinylm report: {note}", file=sys.stderr)
    print(f"report: {path}")
    return 0
