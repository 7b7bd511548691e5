"""`tinylm prepare SOURCES... --tokenizer NAME --out DIR`: a corpus becomes a token store.

A thin face over ``tinylm.data.prepare_store``: parse, show progress (a bar on a terminal, a few
plain lines otherwise), print a summary. Heavy imports happen inside ``run``.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
import time

from tinylm.cli.numbers import whole

logger = logging.getLogger(__name__)


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "prepare", help="tokenise a corpus into a token store",
        description="Read, clean and tokenise text into a token store (train.bin, val.bin, meta.json). "
                    "SOURCES are files, directories or globs of .txt/.csv/.tsv/.jsonl (optionally .gz/.bz2), "
                    "hf:NAME[:CONFIG][@SPLIT] for a Hugging Face dataset, or builtin:children for the "
                    "shipped Gutenberg children's books.",
    )
    p.add_argument("sources", nargs="+", metavar="SOURCE", help="text to tokenise")
    p.add_argument("--tokenizer", required=True, metavar="NAME",
                   help="gpt2, bert-base-uncased, gpt-neox-20b, a tokenizer.json, or bpe:N / wordpiece:N "
                        "to train one on the train split")
    p.add_argument("--out", required=True, metavar="DIR", help="the store directory to create")
    p.add_argument("--val-fraction", type=float, default=None, metavar="F",
                   help="fraction of documents drawn into val by a seeded hash (default 0.01; 0 with --val)")
    p.add_argument("--val", nargs="+", default=None, metavar="FILE", dest="val_files",
                   help="files whose documents all go to val (never trained on)")
    p.add_argument("--test-fraction", type=float, default=0.0, metavar="F", help="also write test.bin")
    p.add_argument("--seed", type=int, default=0, help="seed of the split (default 0)")
    p.add_argument("--docs", choices=("paragraph", "line", "file"), default="paragraph",
                   help="what one document of a text file is (default: blank-line separated paragraph)")
    p.add_argument("--text-field", metavar="FIELD", help="CSV column / JSON field with the text (default 'text')")
    p.add_argument("--normalize", choices=("NFC", "NFKC", "none"), default="NFC", help="Unicode normalisation")
    p.add_argument("--dedup", action="store_true", help="drop exact duplicate documents")
    p.add_argument("--no-eos", action="store_true", help="do not write EOS between documents")
    p.add_argument("--dtype", choices=("auto", "uint16", "uint32"), default="auto",
                   help="token file type (auto: uint16 when the vocabulary fits)")
    p.add_argument("--workers", type=whole(0), default=0,
                   help="tokeniser processes; 0 (default) tokenises in this process on all cores")
    p.add_argument("--force", action="store_true", help="replace an existing store at --out")
    p.set_defaults(func=run)


class ProgressView:
    """Renders ``PrepareProgress`` events: tqdm on a terminal; otherwise (logs, CI) a plain line per
    ~10%, only once a run has taken a few seconds, so quick runs print just their summary."""

    _LABELS = {"train-tokenizer": "training tokenizer", "tokenize": "tokenizing"}
    _QUIET_SECONDS = 3.0

    def __init__(self, stream=None):
        self.stream = sys.stderr if stream is None else stream
        self.bar, self.phase, self.next_report = None, None, 0.0
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.started = time.monotonic()

    def __call__(self, event) -> None:
        if event.phase != self.phase:
            self.close()
            self.phase, self.next_report = event.phase, 0.1
            if self.tty:
                from tqdm import tqdm

                # Bytes when the input size is known; documents otherwise (Hugging Face datasets).
                self.bar = tqdm(total=event.bytes_total, unit="B" if event.bytes_total else " docs",
                                unit_scale=True, file=self.stream, desc=self._LABELS.get(event.phase, event.phase))
        if self.bar is not None:
            self.bar.update((event.bytes_done if event.bytes_total else event.documents) - self.bar.n)
            self.bar.set_postfix(tokens=f"{event.tokens:,}" if event.tokens else None, docs=f"{event.documents:,}",
                                 refresh=False)
        elif (event.bytes_total and event.bytes_done / event.bytes_total >= self.next_report
              and time.monotonic() - self.started >= self._QUIET_SECONDS):
            share = event.bytes_done / event.bytes_total
            logger.info("%s: %3.0f%% (%s documents, %s tokens)", self._LABELS.get(event.phase, event.phase),
                        100 * share, f"{event.documents:,}", f"{event.tokens:,}")
            self.next_report = (int(share * 10) + 1) / 10

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


def run(args: argparse.Namespace) -> int:
    from tinylm.data.prepare import prepare_store
    from tinylm.output_location import check_apart, check_output_dir

    check_output_dir(args.out)
    check_apart(args.out, [*args.sources, *(args.val_files or [])])
    view = ProgressView()
    in_main_thread = threading.current_thread() is threading.main_thread()
    # `kill` cleans up like Ctrl-C does (signal handlers can only be set from the main thread)
    previous = signal.signal(signal.SIGTERM, _raise_interrupt) if in_main_thread else None
    started = time.perf_counter()
    try:
        store = prepare_store(
            args.sources, args.tokenizer, args.out, val_fraction=args.val_fraction, val_files=args.val_files,
            test_fraction=args.test_fraction, seed=args.seed, docs=args.docs, text_field=args.text_field,
            normalize=args.normalize, dedup=args.dedup, eos_between_docs=not args.no_eos, dtype=args.dtype,
            workers=args.workers, overwrite=args.force, progress=view,
        )
    finally:
        view.close()
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous)
    seconds = time.perf_counter() - started
    print(summary(store, seconds))
    return 0


def summary(store, seconds: float | None = None) -> str:
    """A few lines saying what was written and what cleaning dropped."""
    meta = store.meta
    counts, cleaning = meta["counts"], meta["cleaning"]
    splits = ", ".join(f"{name} {info['tokens']:,}" for name, info in meta["splits"].items())
    lines = [
        f"wrote {store.path}: {counts['tokens']:,} tokens ({splits}) from {counts['documents']:,} documents, "
        f"{counts['words']:,} words",
        f"tokenizer {meta['tokenizer']['name']} ({meta['vocab_size']:,} ids, {meta['dtype']}), "
        f"{counts['distinct_tokens']:,} distinct tokens used",
        "cleaning: " + ", ".join(f"{k.replace('_', ' ')} {v:,}" for k, v in cleaning.items()),
    ]
    if seconds:
        lines.append(f"took {seconds:.1f} s ({counts['tokens'] / seconds:,.0f} tokens/s)")
    return "\n".join(lines)
