"""`tinylm finetune RUN --task agnews|fewrel|dbpedia:PATH|csv:PATH [--seeds 5] [--gap | --scratch]`

Fine-tune a pretrained encoder (a `tinylm train` run with `sampler: mlm`) for sequence
classification on a class-balanced subset of a task, over seeds, and report test accuracy as mean ±
std. --scratch trains the same architecture from random weights instead (RUN may then be a model
name such as bert-1 or bert-1+conv2x64k3x3); --gap does both and reports the pretraining gap
(pretrained - scratch), the committee paper's measure. Defaults are the paper's: AdamW, lr 5e-5,
weight decay 1e-2, batch 32, linear decay without warm-up, 50 epochs; AG News 1,000 train / 900 test
per label (the shipped file has 1,900 per label), DBPedia 100/100, FewRel 630/70 over 16 relations.
"""

from __future__ import annotations

import json
from pathlib import Path


def add_split_arguments(p) -> None:
    p.add_argument("--task", required=True, help="agnews[:PATH], fewrel[:PATH], dbpedia:PATH or csv:PATH (without a PATH: under $TINYLM_CLASSIFICATION_DATA)")
    p.add_argument("--labels", type=int, default=None, help="FewRel: how many relations (default 16; 10 as table 1)")
    p.add_argument("--train-per-label", type=int, default=None, help="train items per label (default: the task's)")
    p.add_argument("--test-per-label", type=int, default=None, help="test items per label (default: the task's)")
    p.add_argument("--split-seed", type=int, default=0, help="seed of the balanced train/test split (default 0)")
    p.add_argument("--label-column", default="label", help="csv:PATH: the label column's name (default label)")


def register(sub) -> None:
    p = sub.add_parser("finetune", help="fine-tune an encoder for classification over seeds (accuracy, gap)",
                       description=__doc__)
    p.add_argument("run", help="a pretraining run or checkpoint; with --scratch also a model name (bert-1)")
    add_split_arguments(p)
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--scratch", action="store_true", help="the same architecture from random weights only")
    mode.add_argument("--gap", action="store_true", help="pretrained and from scratch: report the gap")
    p.add_argument("--seeds", type=int, default=5, help="fine-tuning seeds 0..N-1 (default 5)")
    p.add_argument("--epochs", type=float, default=50, help="epochs over the train half (default 50, the paper's)")
    p.add_argument("--max-steps", type=int, default=None, help="stop after this many steps (tiny runs)")
    p.add_argument("--lr", type=float, default=5e-5, help="AdamW learning rate (default 5e-5)")
    p.add_argument("--weight-decay", type=float, default=1e-2, help="AdamW weight decay (default 1e-2)")
    p.add_argument("--batch-size", type=int, default=32, help="mini-batch (default 32)")
    p.add_argument("--tokenizer", default="bert-base-uncased", help="tokenizer when RUN is a model name")
    p.add_argument("--out", help="save every fine-tuned model under OUT/{pretrained,scratch}/seed-N "
                                 "(for `tinylm committee`) and the report as OUT/finetune.json")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=run)


def split_spec(args):
    from tinylm.runs.finetune import SplitSpec
    return SplitSpec(args.task, args.labels, args.train_per_label, args.test_per_label, args.split_seed,
                     args.label_column)


def run(args) -> int:
    from tinylm.errors import UserError
    from tinylm.runs.finetune import finetune_one, load_base, prepare_task
    from tinylm.runs.stats import describe
    from tinylm.train.finetune import FinetuneConfig

    if args.seeds < 1:
        raise UserError(f"--seeds must be at least 1, got {args.seeds}")
    cfg = FinetuneConfig(epochs=args.epochs, lr=args.lr, weight_decay=args.weight_decay,
                         batch_size=args.batch_size, max_steps=args.max_steps)
    cfg.validate()
    base = load_base(args.run, args.tokenizer)
    data = prepare_task(split_spec(args), base)
    kinds = ["pretrained", "scratch"] if args.gap else (["scratch"] if args.scratch else ["pretrained"])
    out = Path(args.out) if args.out else None
    report = {"run": args.run, "task": data.task.name, "labels": data.task.n_labels,
              "train": len(data.train[2]), "test": len(data.test[2]), "split": data.spec.key(),
              "finetune": cfg.__dict__}
    for kind in kinds:
        results = [finetune_one(base, data, cfg, seed, kind == "scratch",
                                out / kind / f"seed-{seed}" if out else None) for seed in range(args.seeds)]
        report[kind] = {**describe([r["accuracy"] for r in results]), "runs": results}
    if args.gap:
        report["gap"] = report["pretrained"]["mean"] - report["scratch"]["mean"]
    if out:
        out.mkdir(parents=True, exist_ok=True)
        (out / "finetune.json").write_text(json.dumps(report, indent=1))
    if args.json:
        print(json.dumps(report, indent=1))
        return 0
    print(f"{args.run} on {data.task.name}: {data.task.n_labels} labels, {report['train']:,} train / "
          f"{report['test']:,} test items (balanced, split seed {args.split_seed})")
    for kind in kinds:
        d = report[kind]
        std = f" ± {d['std']:.4f}" if d["std"] is not None else ""
        print(f"  {kind:<10} accuracy {d['mean']:.4f}{std} over {d['n']} seed(s)")
    if args.gap:
        print(f"  gap (pretrained - scratch) {report['gap']:+.4f}")
    return 0
