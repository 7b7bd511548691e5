"""`tinylm finetune RUN --task agnews|fewrel|dbpedia:PATH|csv:PATH [--seeds 5] [--gap | --scratch] [--lr-grid ...]`

Fine-tune a pretrained encoder (a `tinylm train` run with `sampler: mlm`) for sequence
classification on a class-balanced subset of a task, over seeds, and report test accuracy as mean ±
std beside the majority-class baseline, with per-class accuracy and the confusion matrix in the JSON.
--scratch trains the same architecture from random weights instead (RUN may then be a model name such
as bert-1, bert-1+conv2x64k3x3, or a spec with --flavour bert); --gap does both and reports the
pretraining gap (pretrained - scratch), the committee paper's measure. --lr-grid 1e-4,3e-4,1e-3
chooses each arm's learning rate on a tenth of the train items and reports the choice.

A CSV/TSV task (csv:PATH, with a header) names its label column (--label-column, default label) and,
when it has more than one other column, its text (--text-column, repeatable). --train FILE --test FILE
use a task's own split instead of one file split in two. FewRel marks the head and tail entities
(@ head @, # tail #) unless --no-entity-markers.

Defaults are the paper's: AdamW, lr 5e-5, weight decay 1e-2, batch 32, linear decay without warm-up,
50 epochs; AG News 1,000 train / 900 test per label, DBPedia 100/100, FewRel 630/70 over all the
file's relations (16 in FewRel 1.0's validation file); where a file has fewer items, nine tenths and
one tenth of its smallest label.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path


def add_split_arguments(p) -> None:
    p.add_argument("--task", help="agnews[:PATH], fewrel[:PATH], dbpedia:PATH or csv:PATH (CSV or TSV with a header); "
                                  "the kind alone with --train/--test (no PATH: under $TINYLM_CLASSIFICATION_DATA)")
    p.add_argument("--train", dest="train_file", help="the task's own train file (with --test)")
    p.add_argument("--test", dest="test_file", help="the task's own test file (with --train)")
    p.add_argument("--labels", type=int, default=None, help="FewRel: how many relations (default: all of the file's)")
    p.add_argument("--train-per-label", type=int, default=None,
                   help="train items per label (default: the task's; with --train: all of the file)")
    p.add_argument("--test-per-label", type=int, default=None,
                   help="test items per label (default: the task's; with --test: all of the file)")
    p.add_argument("--split-seed", type=int, default=0, help="seed of the balanced train/test split (default 0)")
    p.add_argument("--label-column", default="label", help="csv:PATH: the label column's name (default label)")
    p.add_argument("--text-column", dest="text_columns", action="append", default=None,
                   help="csv:PATH: the text column (repeat to join several; required when there are several)")
    p.add_argument("--no-entity-markers", dest="entity_markers", action="store_false",
                   help="FewRel: the bare sentence, as the committee paper (default: @ head @ and # tail # marked)")


def register(sub) -> None:
    p = sub.add_parser("finetune", help="fine-tune an encoder for classification over seeds (accuracy, gap)",
                       description=__doc__)
    p.add_argument("run", help="a pretraining run or checkpoint; with --scratch also a model name (bert-1)")
    add_split_arguments(p)
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--scratch", action="store_true", help="the same architecture from random weights only")
    mode.add_argument("--gap", action="store_true", help="pretrained and from scratch: report the gap")
    p.add_argument("--flavour", help="with a spec as RUN: the model's flavour (default bert, the one encoder)")
    p.add_argument("--seeds", type=int, default=5, help="fine-tuning seeds 0..N-1 (default 5)")
    p.add_argument("--epochs", type=float, default=50, help="epochs over the train half (default 50, the paper's)")
    p.add_argument("--max-steps", type=int, default=None, help="stop after this many steps (tiny runs)")
    p.add_argument("--lr", type=float, default=5e-5, help="AdamW learning rate (default 5e-5)")
    p.add_argument("--lr-grid", help="learning rates to choose from per arm on a validation tenth of the train "
                                     "items, e.g. 1e-4,3e-4,1e-3 (replaces --lr)")
    p.add_argument("--weight-decay", type=float, default=1e-2, help="AdamW weight decay (default 1e-2)")
    p.add_argument("--batch-size", type=int, default=32, help="mini-batch (default 32)")
    p.add_argument("--tokenizer", default="bert-base-uncased", help="tokenizer when RUN is a model name")
    p.add_argument("--out", help="save every fine-tuned model under OUT/{pretrained,scratch}/seed-N "
                                 "(for `tinylm committee`) and the report as OUT/finetune.json")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=run)


def split_spec(args):
    from tinylm.data.task_spec import TaskSpec
    from tinylm.errors import UserError

    task = args.task
    if task is None:
        if args.train_file is None:
            raise UserError("say which task with --task (agnews:PATH, fewrel:PATH, csv:PATH ...), or give the "
                            "task's files with --train FILE --test FILE")
        task = "csv"
    return TaskSpec(task, args.labels, args.train_per_label, args.test_per_label, args.split_seed,
                    args.label_column, args.text_columns, args.train_file, args.test_file, args.entity_markers)


class Progress:
    """A line at every quarter of a fine-tune, and one per finished seed, on stderr (``--quiet``: none)."""

    def __init__(self, enabled: bool):
        self.enabled = enabled

    def line(self, text: str) -> None:
        if self.enabled:
            print(text, file=sys.stderr, flush=True)

    def fine_tune(self, what: str):
        started, shown = time.perf_counter(), [0]

        def on_epoch(step: int, total: int, loss: float) -> None:
            quarter = 4 * step // total
            if quarter > shown[0]:
                shown[0] = quarter
                self.line(f"  {what}: step {step:,}/{total:,} loss {loss:.4f} "
                          f"({time.perf_counter() - started:.0f}s)")
        return on_epoch if self.enabled else None


def run(args) -> int:
    from tinylm.errors import UserError
    from tinylm.output_location import check_output_dir, foreign_contents
    from tinylm.eval.classification import majority_baseline
    from tinylm.runs.finetune import finetune_one, load_base, prepare_task, require_pretrained
    from tinylm.runs.lr_grid import choose_lr, parse_lr_grid
    from tinylm.data.tasks import carve_validation
    from tinylm.runs.stats import describe
    from tinylm.train.finetune import FinetuneConfig, require_encoder

    if args.seeds < 1:
        raise UserError(f"--seeds must be at least 1, got {args.seeds}")
    if args.out:
        check_output_dir(args.out, accept=lambda p: foreign_contents(
            p, ("finetune.json", "pretrained", "scratch"), "a tinylm finetune output", "choose another --out"))
    cfg = FinetuneConfig(epochs=args.epochs, lr=args.lr, weight_decay=args.weight_decay,
                         batch_size=args.batch_size, max_steps=args.max_steps)
    cfg.validate()
    grid = parse_lr_grid(args.lr_grid) if args.lr_grid else None
    spec = split_spec(args)
    base = load_base(args.run, args.tokenizer, flavour=args.flavour)
    require_encoder(base.config)
    kinds = ["pretrained", "scratch"] if args.gap else (["scratch"] if args.scratch else ["pretrained"])
    if "pretrained" in kinds:
        require_pretrained(base)
    data = prepare_task(spec, base)
    if grid:  # every label must spare a validation item: known before any work
        carve_validation(data.task, data.split.train, data.spec.split_seed)
    out = Path(args.out) if args.out else None
    progress = Progress(not args.quiet)
    report = {"run": args.run, "task": data.description, "labels": data.task.n_labels,
              "train": len(data.train[2]), "test": len(data.test[2]), "split": data.spec.key(),
              "finetune": cfg.__dict__,
              "baseline": majority_baseline(data.train[2], data.test[2], data.task.label_names)}
    progress.line(f"{args.run} on {data.task.name}: {data.task.n_labels} labels, {report['train']:,} train / "
                  f"{report['test']:,} test items; majority-class baseline {report['baseline']['accuracy']:.4f}")
    if grid:
        report["lr_grid"] = {"values": grid}
    for kind in kinds:
        arm_cfg = cfg
        if grid:
            choice = choose_lr(base, data, cfg, grid, kind == "scratch",
                               lambda lr, k=kind: progress.fine_tune(f"{k} lr {lr:g} (validation)"))
            report["lr_grid"][kind] = choice
            progress.line(f"  {kind}: chose lr {choice['chosen']:g} (validation accuracy "
                          f"{', '.join(f'{k} {v:.4f}' for k, v in choice['validation_accuracy'].items())})")
            arm_cfg = FinetuneConfig(**{**cfg.__dict__, "lr": choice["chosen"]})
        results = []
        for seed in range(args.seeds):
            results.append(finetune_one(base, data, arm_cfg, seed, kind == "scratch",
                                        out / kind / f"seed-{seed}" if out else None,
                                        progress.fine_tune(f"{kind} seed {seed} lr {arm_cfg.lr:g}")))
            progress.line(f"  {kind} seed {seed}: accuracy {results[-1]['accuracy']:.4f}")
        report[kind] = {**describe([r["accuracy"] for r in results]), "lr": arm_cfg.lr,
                        **arm_breakdown(results, data.task.label_names), "runs": results}
    if args.gap:
        report["gap"] = report["pretrained"]["mean"] - report["scratch"]["mean"]
    if out:
        out.mkdir(parents=True, exist_ok=True)
        (out / "finetune.json").write_text(json.dumps(report, indent=1))
    if args.json:
        print(json.dumps(report, indent=1))
        return 0
    print_report(args, data, kinds, report)
    return 0


def arm_breakdown(results: list[dict], names: list[str]) -> dict:
    """Per-class accuracy averaged over the seeds and the confusion matrix summed over them."""
    import numpy as np

    per_class = {}
    for n in names:
        values = [r["per_class_accuracy"][n] for r in results if r["per_class_accuracy"][n] is not None]
        per_class[n] = float(np.mean(values)) if values else None
    return {"per_class_accuracy": per_class, "confusion": np.sum([r["confusion"] for r in results], 0).tolist()}


def print_report(args, data, kinds: list[str], report: dict) -> None:
    b = report["baseline"]
    print(f"{args.run} on {data.task.name}: {data.task.n_labels} labels, {report['train']:,} train / "
          f"{report['test']:,} test items (split seed {data.spec.split_seed})")
    print(f"  {'baseline':<10} accuracy {b['accuracy']:.4f} (always {b['label']!r}; chance {b['chance']:.4f})")
    for kind in kinds:
        d = report[kind]
        std = f" ± {d['std']:.4f}" if d["std"] is not None else ""
        chosen = " (chosen on validation)" if "lr_grid" in report else ""
        print(f"  {kind:<10} accuracy {d['mean']:.4f}{std} over {d['n']} seed(s), lr {d['lr']:g}{chosen}")
        worst = min((v, n) for n, v in d["per_class_accuracy"].items() if v is not None)
        print(f"  {'':<10} lowest per-class accuracy {worst[0]:.4f} ({worst[1]})")
    if args.gap:
        print(f"  gap (pretrained - scratch) {report['gap']:+.4f}")
