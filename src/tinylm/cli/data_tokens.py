"""`tinylm data tokens|paragraphs|restrict`: the committee paper's token statistics and token-controlled
pretraining sets (see ``tinylm.data.overlap``).

  tinylm data tokens STORE --task agnews:PATH       W_S, T_W, T_C, T_M and weighted overlaps
  tinylm data paragraphs STORE --count 5000 --out DIR     W_S random paragraphs (seeded)
  tinylm data restrict STORE --task fewrel:PATH --within --out DIR     only paragraphs of task tokens (T_FR)
  tinylm data restrict STORE --task fewrel:PATH --avoid --count 5000 --out DIR     raise T_M on purpose
"""

from __future__ import annotations

import json

from tinylm.cli.numbers import SEED, whole


def register_actions(sub) -> None:
    from tinylm.cli.finetune import add_split_arguments

    tokens = sub.add_parser("tokens", help="token statistics of a store against a task (T_W, T_C, T_M, overlap)",
                            description=__doc__)
    tokens.add_argument("store", metavar="DIR")
    add_split_arguments(tokens)
    tokens.add_argument("--all-items", action="store_true",
                        help="count every item of the task, not only its balanced train + test split")
    tokens.add_argument("--json", action="store_true")
    tokens.set_defaults(func=run_tokens)

    para = sub.add_parser("paragraphs", help="a store of W_S random train paragraphs (seeded)", description=__doc__)
    para.add_argument("store", metavar="DIR")
    para.add_argument("--count", type=whole(1), required=True, help="W_S: paragraphs (train documents) to keep")
    para.add_argument("--seed", type=SEED, default=0, help="seed of the draw (default 0; nested over --count)")
    para.add_argument("--out", required=True, metavar="DIR")
    para.add_argument("--force", action="store_true", help="replace an existing store at --out")
    para.set_defaults(func=run_paragraphs)

    restrict = sub.add_parser("restrict", help="paragraphs chosen by their tokens: within a task's tokens, or "
                                               "avoiding them (raises T_M)", description=__doc__)
    restrict.add_argument("store", metavar="DIR")
    add_split_arguments(restrict)
    how = restrict.add_mutually_exclusive_group(required=True)
    how.add_argument("--within", action="store_true", help="only paragraphs made solely of the task's tokens")
    how.add_argument("--avoid", action="store_true",
                     help="only paragraphs of tokens the task does not use, plus the --keep-common most common")
    restrict.add_argument("--keep-common", type=whole(0), default=1000,
                          help="--avoid: most frequent pretraining tokens still allowed (default 1000)")
    restrict.add_argument("--count", type=whole(1), default=None, help="keep at most this many (seeded), to match a W_S")
    restrict.add_argument("--seed", type=SEED, default=0)
    restrict.add_argument("--all-items", action="store_true", help="use every task item's tokens")
    restrict.add_argument("--out", required=True, metavar="DIR")
    restrict.add_argument("--force", action="store_true")
    restrict.set_defaults(func=run_restrict)


def task_counts(args, store):
    """Token counts of the task (its split, or every item) with the store's tokenizer."""
    import numpy as np

    from tinylm.cli.finetune import split_spec
    from tinylm.data.overlap import text_token_counts
    from tinylm.data.task_spec import load_split

    split = load_split(split_spec(args))
    task = split.task
    texts = task.texts if args.all_items else [task.texts[i] for i in np.concatenate([split.train, split.test])]
    return task, text_token_counts(store.tokenizer, texts, store.vocab_size, store.special_ids.values())


def run_tokens(args) -> int:
    from tinylm.data.overlap import store_token_counts, token_statistics
    from tinylm.data.store import TokenStore

    store = TokenStore.open(args.store)
    task, counts = task_counts(args, store)
    stats = token_statistics(store_token_counts(store), counts, len(store.documents("train")) - 1)
    if args.json:
        print(json.dumps({"store": str(store.path), "task": task.name, **stats.to_dict()}, indent=1))
        return 0
    print(f"{store.path} against {task.name}:")
    print(f"  W_S {stats.W_S:,} paragraphs   T_W {stats.T_W:,}   T_C {stats.T_C:,}   T_M {stats.T_M:,}")
    print(f"  task token occurrences covered {stats.covered_mass:.4f}   histogram intersection "
          f"{stats.histogram_intersection:.4f}")
    return 0


def _report(subset, what: str) -> None:
    train = subset.meta["splits"]["train"]
    print(f"wrote {subset.path}: {what}: {train['documents']:,} paragraphs, {train['tokens']:,} tokens, "
          f"{train['distinct_tokens']:,} distinct")


def run_paragraphs(args) -> int:
    from tinylm.data.overlap import random_paragraphs
    from tinylm.data.store import TokenStore
    from tinylm.data.subsets import write_documents
    from tinylm.output_location import check_apart, check_output_dir

    check_output_dir(args.out)
    check_apart(args.out, [args.store])
    store = TokenStore.open(args.store)
    docs = random_paragraphs(store, args.count, args.seed)
    subset = write_documents(store, docs, args.out, {"paragraphs": args.count, "seed": args.seed}, args.force)
    _report(subset, f"{args.count:,} random paragraphs (seed {args.seed})")
    return 0


def run_restrict(args) -> int:
    from tinylm.data.overlap import avoiding_tokens, cap_paragraphs, paragraphs_within, store_token_counts
    from tinylm.data.store import TokenStore
    from tinylm.data.subsets import write_documents
    from tinylm.output_location import check_apart, check_output_dir

    check_output_dir(args.out)
    check_apart(args.out, [args.store])
    store = TokenStore.open(args.store)
    task, counts = task_counts(args, store)
    if args.within:
        allowed, what = counts > 0, f"only tokens of {task.name}"
    else:
        allowed = avoiding_tokens(store_token_counts(store), counts, args.keep_common)
        what = f"avoiding {task.name}'s tokens but the {args.keep_common:,} most common"
    docs = cap_paragraphs(paragraphs_within(store, allowed), args.count, args.seed)
    info = {"selection": "within" if args.within else "avoid", "task": task.name, "seed": args.seed,
            "keep_common": None if args.within else args.keep_common}
    _report(write_documents(store, docs, args.out, info, args.force), what)
    return 0
