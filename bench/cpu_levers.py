"""CPU training-throughput levers, one at a time, each against transformers in the same process.

Cumulative, in this order: SDPA flash attention + foreach AdamW (tinylm before this work) -> fused
AdamW -> matmul attention for CPU bf16 -> torch.compile. Each stage alternates rounds with
transformers' LlamaForCausalLM in bf16 autocast (its best setting on this CPU), so the ratio is
robust to machine noise even where absolute tokens/s are not. Prints JSON.

    python bench/cpu_levers.py [--preset babyllama2-16m] [--batch 8] [--seq 128] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from throughput import hf_stepper, measure, tinylm_stepper


def foreach_adamw(enabled: bool):
    """Force the foreach AdamW (the pre-lever setting) while tinylm builds its optimizer."""
    original = torch.optim.AdamW

    def adamw(*args, **kwargs):
        kwargs.update(fused=None, foreach=True)
        return original(*args, **kwargs)
    torch.optim.AdamW = adamw if enabled else original
    return original


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--preset", default="babyllama2-16m")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--seq", type=int, default=128)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--skip-compile", action="store_true")
    args = p.parse_args()
    from tinylm.models import layers

    device, tokens = torch.device("cpu"), args.batch * args.seq
    stages = [("sdpa_flash+foreach_adamw", False, True, False), ("+fused_adamw", False, False, False),
              ("+matmul_attention", True, False, False)]
    if not args.skip_compile:
        stages.append(("+compile", True, False, True))
    theirs = None
    results = []
    for name, matmul_attention, foreach, compile_ in stages:
        layers.CPU_MATMUL_ATTENTION = matmul_attention
        original = foreach_adamw(foreach)
        try:
            ours, model = tinylm_stepper(args.preset, args.batch, args.seq, "bf16", device, compile_)
        finally:
            torch.optim.AdamW = original
        if theirs is None:
            theirs = hf_stepper(model, args.batch, args.seq, "bf16", device, False)
            theirs()
        t = time.perf_counter()
        ours()
        first_step_s = time.perf_counter() - t  # includes compilation when compiling
        ours()
        a, b = [], []
        for _ in range(args.rounds):
            a.append(measure(ours, args.steps, tokens, device))
            b.append(measure(theirs, args.steps, tokens, device))
        results.append({"lever": name, "tinylm_tokens_per_s": round(statistics.median(a), 1),
                        "transformers_tokens_per_s": round(statistics.median(b), 1),
                        "ratio": round(statistics.median(a) / statistics.median(b), 3),
                        "first_step_s": round(first_step_s, 2), "threads": torch.get_num_threads()})
        print(json.dumps(results[-1]), flush=True)
    layers.CPU_MATMUL_ATTENTION = True
    print(json.dumps({"benchmark": "cpu levers", "preset": args.preset, "batch": args.batch, "seq_len": args.seq,
                      "precision": "bf16", "torch": torch.__version__, "results": results}, indent=1))


if __name__ == "__main__":
    main()
