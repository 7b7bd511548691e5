"""`tinylm surgery reset-embeddings CKPT --out CKPT2 [--seed N] [--params embeddings,output] [--latest]`

Active forgetting on a checkpoint (GAFF's way: stop a run, edit its checkpoint, resume it). CKPT is
a tinylm run directory or checkpoint, or a Hugging Face model directory (config.json +
safetensors). CKPT2 is written as a complete new checkpoint; CKPT is never changed.
"""

from __future__ import annotations

import sys

from tinylm.cli.numbers import SEED


def register(sub) -> None:
    p = sub.add_parser("surgery", help="edit a checkpoint: reset-embeddings (active forgetting)",
                       description=__doc__)
    ops = p.add_subparsers(dest="operation", required=True, metavar="OPERATION", parser_class=type(p))
    r = ops.add_parser("reset-embeddings", help="re-draw the embeddings and reset their optimizer state",
                       description=__doc__)
    r.add_argument("checkpoint", metavar="CKPT", help="tinylm run/checkpoint directory, or a Hugging Face model dir")
    r.add_argument("--out", required=True, metavar="CKPT2", help="new checkpoint directory (must not exist)")
    r.add_argument("--seed", type=SEED, default=None,
                   help="seed of the new draw (default: a random one, recorded in CKPT2/surgery.json)")
    r.add_argument("--params", default="embeddings",
                   help="comma-separated: embeddings (default; includes a tied output layer), output, positions, "
                        "or exact parameter names")
    r.add_argument("--latest", action="store_true",
                   help="point the run's checkpoints/latest at CKPT2 (CKPT2 inside RUN/checkpoints/), so "
                        "`tinylm train RECIPE --out RUN --resume` continues from it")
    p.set_defaults(func=run)


def run(args) -> int:
    from tinylm.output_location import check_apart, check_output_dir
    from tinylm.runs.surgery import reset_embeddings

    check_output_dir(args.out)
    check_apart(args.out, [args.checkpoint])
    params = [s.strip() for s in args.params.split(",") if s.strip()]
    report = reset_embeddings(args.checkpoint, args.out, seed=args.seed, params=params, make_latest=args.latest)
    for warning in report.warnings:
        print(f"tinylm surgery: warning: {warning}", file=sys.stderr)
    print(f"{report.out}: re-drew {', '.join(report.params)} ({report.kind} checkpoint, seed {report.seed})")
    if report.kind == "tinylm":
        reset = ", ".join(report.optimizer_reset) or "none stored"
        print(f"optimizer state reset for: {reset}; the rest of the optimizer is kept")
    if args.latest:
        print(f"latest checkpoint of the run is now {report.out.name}: resume with `tinylm train ... --resume`")
    return 0
