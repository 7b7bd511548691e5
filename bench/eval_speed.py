"""BLiMP scoring speed: all 67 original BLiMP files (67,000 pairs) with the BabyLlama-2 16M model.

The model is the `babyllama2-16m` preset (Llama, 8 layers, 256 wide, vocab 16,000) with random
weights: speed does not depend on the weights. Tokenizer: `--tokenizer PATH` takes a real
`bpe:16000` tokenizer.json (e.g. the one `tinylm prepare ../shared/data/corpora/gutenberg
--tokenizer bpe:16000` writes into its store); without it, the shipped GPT-2 tokenizer with ids
folded into the 16,000-entry vocabulary (`id % 16000`) stands in (GPT-2's 50k BPE gives a few
percent fewer tokens per sentence). `scored_tokens` reports what was scored. The target is
<= 120 s on a 2-core CPU; `load_avg` records how busy the machine was. Prints JSON.

    python bench/eval_speed.py [--tokenizer PATH] [--precision fp32|bf16] [--compile] [--batch-tokens 4096]
                               [--limit N] [--profile]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
BLIMP = REPO.parent / "shared" / "data" / "blimp"


class FoldedTokenizer:
    """GPT-2's tokenizer with ids folded into a smaller vocabulary (a speed stand-in, not a model)."""

    def __init__(self, tok, vocab: int):
        self.tok, self.vocab = tok, vocab

    def encode_batch(self, texts, add_special_tokens=False):
        class Enc:
            def __init__(self, ids):
                self.ids = ids
        return [Enc([i % self.vocab for i in e.ids]) for e in self.tok.encode_batch(texts, add_special_tokens=False)]

    def id_to_token(self, i):
        return self.tok.id_to_token(i) if i < self.vocab else "<start>"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="babyllama2-16m")
    ap.add_argument("--tokenizer", help="a bpe:16000 tokenizer.json (default: GPT-2 ids folded into 16,000)")
    ap.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    ap.add_argument("--batch-tokens", type=int, default=4096)
    ap.add_argument("--limit", type=int, help="pairs per paradigm (default: all 1,000)")
    ap.add_argument("--profile", action="store_true", help="print the torch profiler's top operators to stderr")
    ap.add_argument("--compile", action="store_true", help="torch.compile the model (compile time included in wall_s)")
    ap.add_argument("--no-malloc-tuning", action="store_true", help="leave glibc's mmap threshold alone")
    args = ap.parse_args()

    from tinylm.data.tokenizer import load_tokenizer
    from tinylm.eval.minimal_pairs import evaluate_minimal_pairs, limit_per_paradigm, read_minimal_pairs
    from tinylm.eval.scoring import Scorer, keep_freed_memory
    from tinylm.models import build_model, resolve_model_config

    malloc_tuned = False if args.no_malloc_tuning else keep_freed_memory()

    torch.manual_seed(0)
    model = build_model(resolve_model_config(args.preset)).eval()
    vocab = model.config.vocab_size
    if args.tokenizer:
        from tinylm.data.tokenizer import special_ids, vocab_size
        tok = load_tokenizer(args.tokenizer)
        specials = special_ids(tok)
        assert vocab_size(tok) <= vocab, f"{args.tokenizer} has more than {vocab} ids"
        tok_name = args.tokenizer
    else:
        tok = FoldedTokenizer(load_tokenizer("gpt2"), vocab)
        specials = {"bos": 1}  # <s> of a bpe:16000 tokenizer
        tok_name = "gpt2 ids mod 16000 (stand-in)"
    t0 = time.perf_counter()
    pairs = limit_per_paradigm(read_minimal_pairs(BLIMP), args.limit)
    read_s = time.perf_counter() - t0
    scorer = Scorer.for_model(model, precision=args.precision, batch_tokens=args.batch_tokens, compile=args.compile)
    load_before = os.getloadavg()[0]
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    if args.profile:
        from torch.profiler import ProfilerActivity, profile
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            result = evaluate_minimal_pairs(scorer, tok, specials, pairs)
        import sys
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15), file=sys.stderr)
    else:
        result = evaluate_minimal_pairs(scorer, tok, specials, pairs)
    wall = time.perf_counter() - t0
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({
        "benchmark": "blimp-scoring", "model": args.preset, "parameters": sum(p.numel() for p in model.parameters()),
        "vocab_size": vocab, "tokenizer": tok_name, "precision": args.precision, "compile": args.compile,
        "batch_tokens": args.batch_tokens, "malloc_tuned": malloc_tuned, "pairs": result["pairs"], "paradigms": result["paradigm_count"],
        "sentences": 2 * result["pairs"], "scored_tokens": result["scoring"]["tokens"],
        "read_s": round(read_s, 2), "wall_s": round(wall, 2), "pairs_per_s": round(result["pairs"] / wall, 1),
        "tokens_per_s": round(result["scoring"]["tokens"] / wall, 1), "target_s": 120,
        "meets_target": wall <= 120 if args.limit is None else None,
        "accuracy_random_weights": round(result["mean"], 4),
        "cpu_user_s": round(cpu1.ru_utime - cpu0.ru_utime, 1), "cpu_sys_s": round(cpu1.ru_stime - cpu0.ru_stime, 1),
        "load_avg_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "torch": torch.__version__, "threads": torch.get_num_threads(), "cpu": platform.processor() or platform.machine(),
    }, indent=1))


if __name__ == "__main__":
    main()
