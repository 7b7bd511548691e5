"""`tinylm export RUN_OR_CHECKPOINT --out DIR [--head mlm|classification] [--force]`

Writes a transformers model directory (config.json, model.safetensors, tokenizer.json,
tokenizer_config.json) that AutoModelForCausalLM / AutoModelForMaskedLM and AutoTokenizer load
offline, for every flavour with a transformers class (llama, gemma, gpt2, neox, bert). The export
is loaded back and its logits checked against ours before the command returns.
"""

from __future__ import annotations

import json


def register(sub) -> None:
    p = sub.add_parser("export", help="write a run's model as a transformers model directory",
                       description=__doc__)
    p.add_argument("model", metavar="RUN_OR_CHECKPOINT", help="a run directory or a checkpoint directory")
    p.add_argument("--out", required=True, help="the directory to write")
    p.add_argument("--head", choices=("mlm", "classification"),
                   help="encoders: BertForMaskedLM (default) or BertForSequenceClassification")
    p.add_argument("--force", action="store_true", help="replace --out if it exists")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run)


def run(args) -> int:
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
