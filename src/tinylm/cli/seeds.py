"""`tinylm seeds GROUP [GROUP ...] [--metric val_loss] [--plot spread.png] [--json]`

The spread of a metric over seeds for each group (a `tinylm train --seeds` output directory, or any
directory of runs): mean ± sample std per group, each later group against the first (difference of
means, in pooled stds, and Welch's t), and with --plot one violin per group with the seeds as points
(BabyLlama-2's figure 1). --metric takes val_loss (final), best_val_loss (lowest eval of the run), or
any summary.json number such as blimp or hellaswag_acc after `tinylm eval`.
"""

from __future__ import annotations

import json


def register(sub) -> None:
    p = sub.add_parser("seeds", help="spread over seeds per group: mean ± std, Welch's t, violin plot",
                       description=__doc__)
    p.add_argument("groups", nargs="+", metavar="GROUP", help="`tinylm train --seeds` output directories")
    p.add_argument("--metric", default="val_loss", help="val_loss (default), best_val_loss, or a summary.json key")
    p.add_argument("--plot", metavar="PNG", help="write the violin plot here")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run)


def run(args) -> int:
    from tinylm.errors import UserError
    from tinylm.runs.seeds import group_values
    from tinylm.runs.stats import compare, describe

    if args.plot:
        from tinylm.output_location import check_output_file
        check_output_file(args.plot, "--plot")
    groups = []
    for path in args.groups:
        values, skipped = group_values(path, args.metric)
        groups.append({"group": path, **describe(values), "skipped": skipped})
    if not any(g["n"] for g in groups):
        raise UserError(f"no finished run in {', '.join(args.groups)} has {args.metric}: train them (tinylm train "
                        "--seeds) or evaluate them (tinylm eval) first, or choose another --metric")
    reference = groups[0]
    for g in groups[1:]:
        g["vs_first"] = compare(g["values"], reference["values"])
    if args.plot:
        from tinylm.runs.spread import plot_spread  # without matplotlib: one line saying how to install it
        plot_spread([(g["group"], g["values"]) for g in groups], args.metric, args.plot)
    if args.json:
        print(json.dumps({"metric": args.metric, "groups": groups}, indent=1))
        return 0
    _table(groups, args.metric)
    if args.plot:
        print(f"plot: {args.plot}")
    return 0


def _table(groups: list[dict], metric: str) -> None:
    from tinylm.runs.stats import mean_pm

    width = max(5, *(len(g["group"]) for g in groups))
    print(f"{'group':<{width}}  {metric + ' mean ± std':<28} {'min':>9} {'max':>9}")
    for g in groups:
        lo = f"{g['min']:>9.4f}" if g["n"] else f"{'-':>9}"
        hi = f"{g['max']:>9.4f}" if g["n"] else f"{'-':>9}"
        print(f"{g['group']:<{width}}  {mean_pm(g):<28} {lo} {hi}")
        for s in g["skipped"]:
            print(f"{'':<{width}}  (left out {s['run']}: {s['why']})")
    first = groups[0]["group"]
    for g in groups[1:]:
        c = g["vs_first"]
        if c["difference"] is None:
            continue
        line = f"{g['group']} - {first}: {c['difference']:+.4f}"
        if c["effect_size"] is not None:
            line += f" ({c['effect_size']:+.1f} pooled std)"
        w = c["welch"]
        if w is not None:
            df = f", df {w['df']:.1f}" if w["df"] is not None else ""
            line += f", Welch t = {w['t']:+.2f}{df}, p = {w['p_two_sided']:.3g} (two-sided)"
        else:
            line += " (Welch's t needs two finished seeds in each group)"
        print(line)
