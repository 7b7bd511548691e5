"""`tinylm export RUN_OR_CHECKPOINT --out DIR [--head mlm|classification] [--force]`
`tinylm export RUN --babylm DIR [--blimp DIR ...] [--force]`

Writes a transformers model directory (config.json, model.safetensors, tokenizer.json,
tokenizer_config.json) that AutoModelForCausalLM / AutoModelForMaskedLM and AutoTokenizer load
offline, for every flavour with a transformers class (llama, gemma, gpt2, neox, bert). The export
is loaded back and its logits checked against ours before the command returns.

`--babylm DIR` writes a run as the BabyLM 2025 pipeline evaluates it: one model directory per words
checkpoint (`chck_1M`, `chck_2M`, ..., from `checkpoint: {words: babylm}` in the recipe), the final model
as `main`, and a model card README.md; with `--blimp`, each revision's BLiMP predictions in the
pipeline's predictions.json format under DIR/results/.
"""

from __future__ import annotations

import json
from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser("export", help="write a run's model as a transformers model directory",
                       description=__doc__)
    p.add_argument("model", metavar="RUN_OR_CHECKPOINT", help="a run directory or a checkpoint directory")
    p.add_argument("--out", help="the directory to write")
    p.add_argument("--babylm", metavar="DIR", help="write the run's words checkpoints as BabyLM revisions "
                   "(chck_1M, ..., main) and a model card into DIR")
    p.add_argument("--blimp", action="append", default=[], metavar="DIR",
                   help="with --babylm: BLiMP-style JSONL directory or file (repeatable) to write each revision's "
                        "predictions for, in the pipeline's format")
    p.add_argument("--head", choices=("mlm", "classification"),
                   help="encoders: BertForMaskedLM (default) or BertForSequenceClassification")
    p.add_argument("--force", action="store_true", help="replace --out if it exists")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run)


def run(args) -> int:
    from tinylm.errors import UserError

    if (args.out is None) == (args.babylm is None):
        raise UserError("give --out DIR (one transformers model) or --babylm DIR (a run's BabyLM revisions), one of them")
    if args.babylm is not None:
        return _babylm(args)
    if args.blimp:
        raise UserError("--blimp writes BabyLM predictions: use it with --babylm DIR")
    from tinylm.eval.export import export_hf
    from tinylm.eval.hf_import import load_any
    from tinylm.output_location import check_apart, check_output_dir, foreign_contents

    check_apart(args.out, [args.model])  # `--force` onto its own input would delete the source first
    # --force replaces a model directory (an earlier export), never a folder of other files
    check_output_dir(args.out, accept=(lambda p: foreign_contents(
        p, ("tinylm_export.json", "config.json"), "a transformers model directory",
        "--force only replaces a model directory: choose another --out")) if args.force else None)
    loaded = load_any(args.model)
    result = export_hf(loaded, args.out, head=args.head, force=args.force)
    if args.json:
        print(json.dumps(result, indent=1))
        return 0
    print(f"exported {loaded.checkpoint} as {result['hf_class']} to {result['out']} "
          f"(logits agree within {result['max_abs_logit_diff']:.1e})")
    print("files: " + ", ".join(result["files"]))
    print(f"load with: AutoModelFor{'MaskedLM' if loaded.model.config.kind == 'encoder' else 'CausalLM'}"
          f".from_pretrained({result['out']!r}) and AutoTokenizer.from_pretrained({result['out']!r})")
    return 0


def _babylm(args) -> int:
    from tinylm.errors import UserError
    from tinylm.eval.minimal_pairs import read_minimal_pairs
    from tinylm.output_location import check_apart, check_output_dir, foreign_contents
    from tinylm.runs.babylm_export import export_babylm, plan

    if args.head:
        raise UserError("--head picks one model's head; a --babylm export writes each revision with its own "
                        "(causal LM, or masked LM for encoders): drop --head")
    check_apart(args.babylm, [args.model], "--babylm")
    check_output_dir(args.babylm, "--babylm", accept=(lambda p: foreign_contents(
        p, ("README.md", "main"), "a BabyLM export", "--force only replaces a BabyLM export: choose another "
        "--babylm folder")) if args.force else None)
    plan(args.model)  # the run's words checkpoints, before the BLiMP files are read
    blimp = [(Path(path).expanduser().stem if Path(path).suffix == ".jsonl" else Path(path).expanduser().name,
              read_minimal_pairs(path)) for path in args.blimp]
    result = export_babylm(args.model, args.babylm, blimp=blimp, force=args.force)
    if args.json:
        print(json.dumps(result, indent=1))
        return 0
    names = [r["revision"] for r in result["revisions"]]
    print(f"exported {len(names)} revisions of {args.model} to {result['out']}: {', '.join(names)}")
    print(f"load one with: AutoModelForCausalLM.from_pretrained({str(Path(result['out']) / names[0])!r})")
    return 0
