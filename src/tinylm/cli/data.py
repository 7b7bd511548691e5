"""`tinylm data info DIR [--json]` and `tinylm data subset DIR --words 1M 2M --out DIR`."""

from __future__ import annotations

import argparse
import json

from tinylm.cli.numbers import SEED


def register(subparsers) -> None:
    p = subparsers.add_parser("data", help="inspect token stores and cut nested subsets")
    sub = p.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    info = sub.add_parser("info", help="print a store's counts")
    info.add_argument("store", metavar="DIR")
    info.add_argument("--json", action="store_true", help="print meta.json's counts as JSON")
    info.set_defaults(func=run_info)
    subset = sub.add_parser(
        "subset", help="nested random subsets of the train split by word count (1M ⊂ 2M ⊂ ...)",
        description="Write one store per word budget under --out (e.g. OUT/1M, OUT/2M); each smaller "
                    "train split is inside every larger one. Val and test are copied unchanged.",
    )
    subset.add_argument("store", metavar="DIR")
    subset.add_argument("--words", nargs="+", required=True, metavar="N", help="budgets such as 1M 2M 500k")
    subset.add_argument("--out", required=True, metavar="DIR", help="directory to hold one store per budget")
    subset.add_argument("--seed", type=SEED, default=0, help="seed of the document order (default 0)")
    subset.add_argument("--force", action="store_true", help="replace existing subset stores")
    subset.set_defaults(func=run_subset)
    from tinylm.cli.data_tokens import register_actions  # token statistics and token-controlled subsets

    register_actions(sub)


def info_dict(store) -> dict:
    meta = store.meta
    return {
        "path": str(store.path),
        "tokenizer": meta["tokenizer"],
        "vocab_size": meta["vocab_size"],
        "dtype": meta["dtype"],
        "special_ids": meta.get("special_ids", {}),
        "separator": meta.get("separator"),
        "counts": meta["counts"],
        "splits": {name: {k: v for k, v in s.items() if not k.endswith("file")} for name, s in meta["splits"].items()},
        "cleaning": meta.get("cleaning", {}),
        "sources": len(meta.get("sources", [])),
        **({"subset": meta["subset"]} if "subset" in meta else {}),
    }


def run_info(args: argparse.Namespace) -> int:
    from tinylm.data.store import TokenStore

    info = info_dict(TokenStore.open(args.store))
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    c = info["counts"]
    print(f"{info['path']}")
    print(f"  tokenizer  {info['tokenizer']['name']} ({info['vocab_size']:,} ids, {info['dtype']}, "
          f"sha256 {info['tokenizer']['sha256'][:12]})")
    sep = info["separator"] or {}
    print(f"  separator  {sep.get('token') or 'none'} {sep.get('placement', '')}".rstrip())
    print(f"  total      {c['documents']:>12,} documents {c['words']:>14,} words {c['tokens']:>14,} tokens"
          f" {c['distinct_tokens']:>8,} distinct")
    for name, s in info["splits"].items():
        print(f"  {name:<10} {s['documents']:>12,} documents {s['words']:>14,} words {s['tokens']:>14,} tokens"
              f" {s['distinct_tokens']:>8,} distinct")
    dropped = {k: v for k, v in info["cleaning"].items() if v}
    print("  cleaning   " + (", ".join(f"{k.replace('_', ' ')} {v:,}" for k, v in dropped.items()) or "nothing changed"))
    print(f"  sources    {info['sources']} file(s)")
    if "subset" in info:
        s = info["subset"]
        print(f"  subset     {s['words']:,} words (seed {s.get('seed')}) of {s['of']}")
    return 0


def run_subset(args: argparse.Namespace) -> int:
    from pathlib import Path

    from tinylm.data.store import TokenStore
    from tinylm.data.subsets import parse_words, write_subset
    from tinylm.output_location import check_apart, check_output_dir

    check_output_dir(args.out)
    check_apart(args.out, [args.store])
    store = TokenStore.open(args.store)
    budgets = [(text, parse_words(text)) for text in args.words]
    for text, words in sorted(budgets, key=lambda b: b[1]):
        subset = write_subset(store, words, Path(args.out) / text, seed=args.seed, overwrite=args.force)
        train = subset.meta["splits"]["train"]
        print(f"wrote {subset.path}: {train['words']:,} words, {train['tokens']:,} tokens, "
              f"{train['documents']:,} documents")
    return 0
