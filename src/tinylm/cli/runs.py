"""`tinylm runs [DIR ...] [--where 'val_loss<4.5'] [--method sleep] [--sort=-flops] [--json]`

Lists the runs found at or under each DIR (default: the current directory), one row each: the run,
its recipe and methods, its status, steps, tokens and FLOPs so far, its best and final validation loss,
its BLiMP mean (after `tinylm eval --blimp`) and wall time. Status: running (a live `tinylm train`
holds it), finished, stopped (interrupted; `tinylm train --out RUN --resume` continues it) or failed
(diverged, or died before its first checkpoint). A cached index ($TINYLM_CACHE/run-index.sqlite) makes
a second listing read only the runs that changed; the run directories stay the truth.

--where takes FIELD OP VALUE (OP: < <= > >= = !=), several of them all holding:
  tinylm runs runs/ --where 'val_loss<4.5' --where 'steps>=1000' --where status=finished
--sort FIELD sorts ascending, --sort=-FIELD descending (runs without the field go last).
"""

from __future__ import annotations

import json
import sys

COLUMNS = ("run", "recipe", "methods", "status", "steps", "tokens", "flops", "best_val_loss", "val_loss",
           "blimp", "wall_s")
HEADERS = {"best_val_loss": "best_val", "wall_s": "wall"}
JSON_KEYS = ("run", "path", "recipe", "methods", "status", "steps", "total_steps", "tokens", "flops",
             "best_val_loss", "val_loss", "blimp", "wall_s", "problems")


def register(sub) -> None:
    from tinylm.rundir.run_query import FIELDS

    p = sub.add_parser("runs", help="list the runs under directories: status, compute, losses, BLiMP",
                       description=__doc__, formatter_class=_raw())
    p.add_argument("dirs", nargs="*", default=["."], metavar="DIR", help="directories holding runs (default: .)")
    p.add_argument("--where", action="append", default=[], metavar="COND",
                   help=f"FIELD OP VALUE, e.g. 'val_loss<4.5' (fields: {', '.join(FIELDS)})")
    p.add_argument("--method", action="append", default=[], metavar="NAME",
                   help="only runs whose recipe has this method (sleep, forget, grow, ...)")
    p.add_argument("--sort", metavar="FIELD", help="sort by FIELD; --sort=-FIELD for descending")
    p.add_argument("--json", action="store_true", help="a JSON list, one object per run")
    p.set_defaults(func=run)


def _raw():
    import argparse
    return argparse.RawDescriptionHelpFormatter


def run(args) -> int:
    from tinylm.rundir.index import list_runs
    from tinylm.rundir.run_query import parse_condition, select, ordered, sort_key

    conditions = [parse_condition(text) for text in args.where]  # every mistake before anything is read
    conditions += [parse_condition(f"methods={name}") for name in args.method]
    if args.sort:
        sort_key(args.sort)
    listing = list_runs(args.dirs)
    rows = ordered(select(listing.rows, conditions), args.sort)
    for row in listing.rows:
        for problem in row["problems"]:
            print(f"tinylm runs: {row['run']}: {problem}", file=sys.stderr)
    if not listing.rows:
        print(f"tinylm runs: no runs under {', '.join(args.dirs)} (a run is a directory with config.yaml and "
              "metrics.jsonl or summary.json, as `tinylm train` writes)", file=sys.stderr)
    elif not rows:
        print(f"tinylm runs: none of the {len(listing.rows)} runs matches", file=sys.stderr)
    if args.json:
        print(json.dumps([{k: row.get(k) for k in JSON_KEYS} for row in rows], indent=1))
    elif rows:
        print(table(rows))
    return 0


def _cell(name: str, value) -> str:
    if value is None or value == []:
        return "-"
    if name == "methods":
        return ",".join(value)
    if name in ("best_val_loss", "val_loss", "blimp"):
        return f"{value:.4f}"
    if name in ("tokens", "flops"):
        return _si(value)
    if name == "wall_s":
        return _duration(value)
    if name == "steps":
        return f"{int(value):,}"
    return str(value)


def _si(value: float) -> str:
    for unit, scale in (("E", 1e18), ("P", 1e15), ("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(value) >= scale:
            return f"{value / scale:.3g}{unit}"
    return f"{value:.3g}"


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s" if m else f"{s}s"


def table(rows: list[dict]) -> str:
    """An aligned table: text columns to the left, numbers to the right."""
    cells = [[_cell(c, row.get(c)) for c in COLUMNS] for row in rows]
    heads = [HEADERS.get(c, c) for c in COLUMNS]
    widths = [max(len(x) for x in col) for col in zip(heads, *cells)]
    left = {"run", "recipe", "methods", "status"}

    def line(values):
        return "  ".join(v.ljust(w) if c in left else v.rjust(w) for c, v, w in zip(COLUMNS, values, widths)).rstrip()
    return "\n".join([line(heads), *(line(c) for c in cells)])
