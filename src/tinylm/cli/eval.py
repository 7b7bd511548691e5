"""`tinylm eval RUN_OR_CHECKPOINT [--blimp DIR] [--hellaswag FILE] [--val STORE] [--limit N] [--json]`
`tinylm eval --ensemble RUN1 RUN2 [...] [same options]`
`tinylm eval RUN --lm-eval TASK[,TASK] [--lm-eval-include DIR]`

Scores a run's latest checkpoint (or any checkpoint, or a transformers model directory) exactly as
the reference pipelines do: BLiMP (log-probability of each sentence after the start token;
pseudo-log-likelihood for encoders), HellaSwag (acc and acc_norm, as lm-evaluation-harness), and
validation loss on the training loop's own seeded windows. Results go to RUN/eval/<name>.json,
each item's scores and verdict to RUN/eval/<name>.items.jsonl (for `tinylm compare A B --paired`),
headline numbers into RUN/summary.json, and a table (or --json) to the terminal.

`--ensemble` evaluates a direct ensemble (BabyLlama-2): the members' logits are averaged, then
softmaxed, for every task; members must share a tokenizer. Validation windows follow the first
member's run recipe. An ensemble belongs to no run, so results are written only with --out.

`--lm-eval` runs lm-evaluation-harness tasks (log-likelihood ones) on the model or ensemble through
tinylm's scorer (eval/harness.py); `--lm-eval-include DIR` adds task YAMLs over local data files.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser("eval", help="BLiMP, HellaSwag and validation loss of a run or checkpoint",
                       description=__doc__)
    p.add_argument("model", metavar="RUN_OR_CHECKPOINT", nargs="?",
                   help="a run directory, a checkpoint directory, or a transformers model directory")
    p.add_argument("--ensemble", nargs="+", metavar="MODEL",
                   help="evaluate the mean-logit ensemble of these models (runs, checkpoints or transformers "
                        "directories with one tokenizer) instead of one model")
    p.add_argument("--blimp", action="append", default=[], metavar="DIR",
                   help="BLiMP-style JSONL directory or file (repeatable), e.g. the data/ folder of "
                        "github.com/alexwarstadt/blimp")
    p.add_argument("--hellaswag", metavar="FILE", help="HellaSwag JSONL or 6-lines-per-item text file")
    p.add_argument("--hellaswag-format", choices=("lm-eval", "llama.cpp"),
                   help="how the HellaSwag query is built: lm-eval (ctx_b capitalised; default for JSONL) or "
                        "llama.cpp (the context as written; default for the text format)")
    p.add_argument("--val", metavar="STORE", help="token store: validation loss on the run's fixed seeded windows")
    p.add_argument("--lm-eval", metavar="TASK[,TASK]",
                   help="lm-evaluation-harness tasks (log-likelihood ones), scored by tinylm's scorer; results in "
                        "eval/lm-eval.<task>.json (needs pip install 'tinylm[lm-eval]')")
    p.add_argument("--lm-eval-include", metavar="DIR",
                   help="a folder of lm-eval task YAMLs (e.g. dataset_path: json over local files) for --lm-eval")
    p.add_argument("--limit", type=int, help="only the first N pairs of each BLiMP paradigm, N HellaSwag items and "
                                             "N documents of each lm-eval task")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--precision", choices=("fp32", "bf16"), default="fp32",
                   help="fp32 (default, exact) or bf16 autocast for BLiMP/HellaSwag forwards (faster on CPUs with AMX)")
    p.add_argument("--batch-tokens", type=int, default=4096, help="padded tokens per forward (default 4096)")
    p.add_argument("--device", default="cpu", help="cpu (default), auto, cuda, cuda:N or mps")
    p.add_argument("--compile", action="store_true",
                   help="torch.compile the model first (a minute to compile; then faster on long evaluations)")
    p.add_argument("--leading-space", action="store_true",
                   help="put a space before each BLiMP sentence, as lm-evaluation-harness >= 0.4 does")
    p.add_argument("--val-windows", type=int, help="override the run's eval.windows")
    p.add_argument("--val-seq-len", type=int, help="override the run's data.seq_len")
    p.add_argument("--out", help="directory for the eval/*.json files (default: the run's eval/)")
    p.add_argument("--paradigms", action="store_true", help="list every BLiMP paradigm in the table")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


class _Progress:
    """A tqdm bar per task on a terminal (unit: scored tokens); silent otherwise."""

    def __init__(self, enabled: bool):
        self.enabled = enabled and sys.stderr.isatty()
        self.bar = None

    def begin(self, description: str, total: int) -> None:
        if not self.enabled:
            return
        from tqdm import tqdm
        self.close()
        self.bar = tqdm(total=total, desc=description, unit="tok", unit_scale=True, dynamic_ncols=True,
                        file=sys.stderr, leave=False)

    def advance(self, n: int) -> None:
        if self.bar is not None:
            self.bar.update(n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _check_args(args) -> None:
    from tinylm.errors import UserError

    if args.ensemble and args.model:
        raise UserError(f"give one model or --ensemble MODEL1 MODEL2 ..., not both: put {args.model} after "
                        "--ensemble to make it a member")
    if not args.ensemble and not args.model:
        raise UserError("no model: give RUN_OR_CHECKPOINT, or --ensemble MODEL1 MODEL2 ...")
    if args.ensemble and len(args.ensemble) < 2:
        raise UserError(f"--ensemble {args.ensemble[0]} has one member: name two or more models, or evaluate it "
                        f"alone with `tinylm eval {args.ensemble[0]}`")
    if not (args.blimp or args.hellaswag or args.val or args.lm_eval):
        raise UserError("nothing to evaluate: give --blimp DIR, --hellaswag FILE, --val STORE and/or --lm-eval TASK")
    if args.lm_eval_include and not args.lm_eval:
        raise UserError("--lm-eval-include DIR adds task YAMLs for --lm-eval; name the tasks with --lm-eval TASK")
    for flag, value in (("--limit", args.limit), ("--batch-tokens", args.batch_tokens),
                        ("--val-windows", args.val_windows), ("--val-seq-len", args.val_seq_len)):
        if value is not None and value < 1:
            raise UserError(f"{flag} {value}: give a positive number (e.g. {flag} 100)")


def _device(name: str):
    from tinylm.train.build import pick_device
    from tinylm.train.distributed import World
    return pick_device(name, World())


def _names(paths: list[str]) -> list[str]:
    names, seen = [], {}
    for raw in paths:
        p = Path(raw)
        base = p.stem if p.suffix == ".jsonl" else p.name
        seen[base] = seen.get(base, 0) + 1
        names.append(base if seen[base] == 1 else f"{base}-{seen[base]}")
    return names


def run(args) -> int:
    from tinylm.eval import report
    from tinylm.eval.ensemble import ensemble_of, load_members
    from tinylm.eval.hf_import import load_any, special_ids_for
    from tinylm.eval.items import write_items
    from tinylm.eval.minimal_pairs import evaluate_minimal_pairs, limit_per_paradigm, read_minimal_pairs
    from tinylm.eval.multiple_choice import evaluate_hellaswag, read_hellaswag
    from tinylm.eval.scoring import Scorer, keep_freed_memory
    from tinylm.eval.validation import validation_loss

    from tinylm.output_location import check_output_dir

    _check_args(args)
    if args.out:
        check_output_dir(args.out)
    keep_freed_memory()
    device = _device(args.device)
    # Read every data file first: a malformed line fails in a second, before the model loads.
    blimp_sets = [(name, limit_per_paradigm(read_minimal_pairs(path), args.limit), path)
                  for name, path in zip(_names(args.blimp), args.blimp)]
    hellaswag = None
    if args.hellaswag:
        items, fmt = read_hellaswag(args.hellaswag, args.hellaswag_format)
        hellaswag = (items[:args.limit] if args.limit else items, fmt)
    if args.val:
        from tinylm.data import TokenStore
        TokenStore.open(args.val)
    lm_eval_plan = None
    if args.lm_eval:
        from tinylm.eval import harness
        lm_eval_plan = harness.prepare(args.lm_eval, args.lm_eval_include)

    if args.ensemble:
        members = load_members(args.ensemble, device=str(device), who="ensemble member")
        loaded, model = members[0], ensemble_of(members)  # the first member speaks for the tokenizer and recipe
    else:
        members = [load_any(args.model, device=str(device))]
        loaded = members[0]
        model = loaded.model.eval()
    if not args.ensemble and not args.out:  # the results go into the model's run: writable, before scoring
        run_target = report.results_target(loaded, None)[0]
        if run_target is not None:
            check_output_dir(run_target, "results folder", fix="pass --out DIR to write the results elsewhere")
    tokenizer = loaded.tokenizer
    specials = special_ids_for(loaded)
    progress = _Progress(enabled=not args.quiet and not args.json)
    scorer = Scorer.for_models([m.model for m in members], precision=args.precision, batch_tokens=args.batch_tokens,
                               compile=args.compile, pad_id=int(specials.get("pad", 0)), progress=progress)
    lm_eval_model = harness.adapter(scorer, tokenizer, specials, args.model or "ensemble") if lm_eval_plan else None
    recipe = None
    if loaded.run_dir is not None and (Path(loaded.run_dir) / "config.yaml").is_file():
        from tinylm.train.build import recipe_for_run
        recipe = recipe_for_run(loaded.run_dir)

    results: list[tuple[str, str, dict]] = []
    try:
        for name, pairs, path in blimp_sets:
            r = evaluate_minimal_pairs(scorer, tokenizer, specials, pairs, leading_space=args.leading_space)
            r["source"] = str(Path(path).resolve())
            r["limit_per_paradigm"] = args.limit
            results.append(("blimp", name, r))
        if hellaswag is not None:
            items, fmt = hellaswag
            r = evaluate_hellaswag(scorer, tokenizer, specials, items)
            r.update(source=str(Path(args.hellaswag).resolve()), format=fmt, limit=args.limit,
                     query_format=args.hellaswag_format or ("lm-eval" if fmt == "jsonl" else "llama.cpp"))
            results.append(("hellaswag", "hellaswag", r))
        if args.val:
            r = validation_loss(model, args.val, tokenizer=tokenizer, tokenizer_path=loaded.tokenizer_path,
                                recipe=recipe, windows=args.val_windows, seq_len=args.val_seq_len)
            results.append(("val", "val", r))
        if lm_eval_plan is not None:
            results += harness.run(lm_eval_plan, lm_eval_model, limit=args.limit)
    finally:
        progress.close()

    if args.ensemble:
        info = _ensemble_info(members)
        target, summary_path = (Path(args.out).expanduser() if args.out else None), None
    else:
        info = _model_info(loaded)
        target, summary_path = report.results_target(loaded, args.out)
    written, headline = [], {}
    for task, name, r in results:
        items = r.pop("per_item", None)  # each item's verdict: <name>.items.jsonl beside <name>.json
        r["model"] = info
        if target is not None:
            if items is not None:  # first: a crash between the two leaves the older summary, not older items
                written.append(str(write_items(target, name, items)))
            written.append(str(report.write_results(target, name, r)))
        headline.update(report.headline(task, name, r, run_store=task == "val" and report.is_run_store(recipe, r["store"])))
    if summary_path is not None:
        report.merge_summary(summary_path, headline)
        written.append(str(summary_path))

    if args.json:
        print(json.dumps({"model": info, "headline": headline, "results": {name: r for _, name, r in results},
                          "written": written}, indent=1))
        return 0
    if args.ensemble:
        line = (f"ensemble of {len(members)} (mean logits, {info['parameters'] / 1e6:.1f}M parameters): "
                + ", ".join(m["path"] for m in info["members"]))
    else:
        line = f"model {info['path']} ({info['flavour']}, {info['parameters'] / 1e6:.1f}M parameters" + \
               (f", step {info['step']})" if info.get("step") is not None else ")")
    print(report.format_results(line, results, paradigms=args.paradigms))
    if written:
        print("written: " + ", ".join(written))
    else:
        print("(not written anywhere: " + ("an ensemble" if args.ensemble else "the model") +
              " is not in a run; pass --out DIR to keep the results)")
    return 0


def _model_info(loaded) -> dict:
    import re

    name = Path(loaded.checkpoint).name
    m = re.fullmatch(r"step-(\d+)", name)
    cfg = loaded.model.config
    return {"path": str(loaded.checkpoint), "run": str(loaded.run_dir) if loaded.run_dir else None,
            "step": int(m.group(1)) if m else None, "flavour": cfg.flavour, "kind": cfg.kind,
            "parameters": sum(p.numel() for p in loaded.model.parameters()), "tokenizer": loaded.tokenizer_name}


def _ensemble_info(members) -> dict:
    """The report's model entry for a direct ensemble: each member, and what they share."""
    infos = [_model_info(m) for m in members]
    return {"ensemble": "mean logits", "members": infos,
            "path": "ensemble(" + ", ".join(i["path"] for i in infos) + ")", "run": None, "step": None,
            "flavour": "+".join(sorted({i["flavour"] for i in infos})), "kind": infos[0]["kind"],
            "parameters": sum(i["parameters"] for i in infos), "tokenizer": infos[0]["tokenizer"]}
