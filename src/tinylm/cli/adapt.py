"""`tinylm adapt RUN --corpus SOURCES... --out DIR`: adapt a pretrained model to a new language.

As in Chen et al. (2023) and GAFF: train a new tokenizer on the new language, give the model fresh
embeddings for it, freeze the body and train only the vocabulary (embeddings, and the output layer
when untied). Reports steps to reach a target loss and the area under the loss curve.
"""

from __future__ import annotations

from pathlib import Path

from tinylm.cli.numbers import SEED, finite


def register(sub) -> None:
    p = sub.add_parser("adapt", help="adapt a trained run to a new language (new tokenizer, body frozen)",
                       description=__doc__)
    p.add_argument("run", help="a run directory or checkpoint (the pretrained model)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--corpus", nargs="+", help="text of the new language (files, directories, globs)")
    src.add_argument("--store", help="an already prepared token store of the new language")
    p.add_argument("--tokenizer", default="bpe:8000", help="tokenizer trained on the new corpus (default bpe:8000)")
    p.add_argument("--docs", default="line", choices=("line", "paragraph", "file"),
                   help="what a document of the new corpus is (default line)")
    p.add_argument("--out", required=True, help="the adaptation run directory")
    p.add_argument("--duration", default="500 steps", help="adaptation length (default 500 steps)")
    p.add_argument("--lr", type=float, default=None, help="learning rate (default: the pretraining recipe's)")
    p.add_argument("--target-loss", type=finite(0, above=True), default=None,
                   help="report the steps needed to reach this training loss")
    p.add_argument("--seed", type=SEED, default=0, help="initialisation seed of the new embeddings")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--resume", action="store_true")
    p.set_defaults(func=run)


def run(args) -> int:
    from tinylm.output_location import check_apart, check_output_dir, foreign_contents
    from tinylm.runs.adaptation import ADAPTATION_FILES, adapt

    check_apart(args.out, [args.run, args.store, *(args.corpus or [])])
    check_output_dir(args.out, accept=lambda p: foreign_contents(
        p, ADAPTATION_FILES, "an adaptation", "choose a new or empty --out"))
    report = adapt(args.run, args.out, corpus=args.corpus, store=args.store, tokenizer=args.tokenizer,
                   duration=args.duration, lr=args.lr, target_loss=args.target_loss, seed=args.seed,
                   overrides=args.overrides, resume=args.resume, docs=args.docs)
    reached = report["steps_to_target"]
    print(f"adapted {args.run} -> {args.out}: final loss {report['final_loss']:.4f}, val loss {report['val_loss']:.4f}, "
          f"loss AUC {report['loss_auc']:.4f}" + (f", target {report['target_loss']} reached at step {reached}"
                                                 if report["target_loss"] is not None else ""))
    print(f"report: {Path(args.out) / 'adaptation.json'}")
    return 0
