"""CPU training-throughput levers, one at a time, each against transformers in the same process.

Cumulative, in this order (each stage rebuilds tinylm's step with one more lever on):

    sdpa_flash+foreach_adamw   tinylm before issue 9: SDPA's flash kernel, foreach AdamW, loss eager
    +fused_adamw               one fused AdamW kernel instead of foreach
    +matmul_attention          attention as two matmuls for CPU bf16 (SDPA's flash backward is slow)
    +compile_model             torch.compile of the model; cross-entropy still eager, outside
    +compile_objective         model and F.cross_entropy compiled together (`train/objective.py`)
    +tinylm_cross_entropy      tinylm's cross-entropy (`losses/cross_entropy.py`): no float32
                               log-probabilities saved, a one-pass backward
    +keep_freed_memory         glibc keeps freed memory (`train/cpu_memory.py`); process-wide, so
                               transformers gets it too from this stage on

Each stage alternates rounds with transformers' LlamaForCausalLM under autocast in the same
precision (`--precision`, default auto: bf16 where this CPU computes it natively, else fp32; the
bf16 levers then change nothing), so the ratio is robust to machine noise even where absolute tokens/s are
not. The last stage also reports the ratio against transformers as it ran before the allocator
change (`ratio_vs_default_allocator`): what a user comparing with their own loop would see. Prints JSON.

    python bench/cpu_levers.py [--preset babyllama2-16m] [--batch 8] [--seq 128] [--rounds 5] [--precision auto]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn

from throughput import hf_stepper, measure, tinylm_stepper
from tinylm.precision import PRECISIONS, cpu_capability, resolve_precision
from tinylm.train.objective import lm_loss as tinylm_loss

STAGES = ["sdpa_flash+foreach_adamw", "+fused_adamw", "+matmul_attention", "+compile_model",
          "+compile_objective", "+tinylm_cross_entropy", "+keep_freed_memory"]


def pytorch_loss(logits, labels):
    return F.cross_entropy(logits.float().flatten(0, 1), labels.flatten(), ignore_index=-100)


class ModelCompiledAlone(nn.Module):
    """The arrangement before `Objective`: the (optionally compiled) model, then an eager loss."""

    def __init__(self, model: nn.Module, compile_: bool):
        super().__init__()
        self.model = model
        from tinylm.compiling import compiled

        self.forward_model = compiled(model) if compile_ else model

    def forward(self, input_ids, attention_mask, labels, return_logits=False, soft_targets=None):
        logits = self.forward_model(input_ids, attention_mask)
        loss = pytorch_loss(logits, labels)
        return loss, loss, None, (logits if return_logits else None)  # Objective's (total, CE, KL, logits)


def foreach_adamw(enabled: bool):
    """Force the foreach AdamW (the pre-lever setting) while tinylm builds its optimizer."""
    original = torch.optim.AdamW

    def adamw(*args, **kwargs):
        kwargs.update(fused=None, foreach=True)
        return original(*args, **kwargs)
    torch.optim.AdamW = adamw if enabled else original
    return original


def build_stage(index: int, args):
    """tinylm's step with the first `index + 1` levers of STAGES on."""
    from tinylm.models import layers
    from tinylm.train import objective, run

    layers.CPU_MATMUL_ATTENTION = index >= 2
    if index < 4:
        run.Objective = lambda model: ModelCompiledAlone(model, compile_=index == 3)
    else:
        run.Objective = objective.Objective
    objective.lm_loss = pytorch_loss if index < 5 else tinylm_loss
    if index >= 6:
        os.environ.pop("TINYLM_KEEP_FREED_MEMORY", None)
    original = foreach_adamw(index == 0)
    try:
        return tinylm_stepper(args.preset, args.batch, args.seq, args.precision, torch.device("cpu"), compile_=index >= 4)
    finally:
        torch.optim.AdamW = original


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="babyllama2-16m")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--seq", type=int, default=128)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--precision", default="auto", choices=PRECISIONS[:3],
                   help="auto (default): bf16 where this CPU computes it natively, else fp32")
    args = p.parse_args()
    choice = resolve_precision(args.precision, "cpu")
    args.precision = choice.precision  # both contenders in the resolved precision
    os.environ["TINYLM_KEEP_FREED_MEMORY"] = "0"  # until the last stage turns it on
    device, tokens = torch.device("cpu"), args.batch * args.seq
    theirs = None
    results = []
    for index, name in enumerate(STAGES):
        ours, model = build_stage(index, args)
        if theirs is None:
            theirs = hf_stepper(model, args.batch, args.seq, args.precision, device, False)
            theirs()
        t = time.perf_counter()
        ours()
        first_step_s = time.perf_counter() - t  # includes compilation when compiling
        ours()
        theirs()  # the first transformers step after an allocator change faults its memory in again
        a, b = [], []
        for _ in range(args.rounds):
            a.append(measure(ours, args.steps, tokens, device))
            b.append(measure(theirs, args.steps, tokens, device))
        row = {"lever": name, "tinylm_tokens_per_s": round(statistics.median(a), 1),
               "transformers_tokens_per_s": round(statistics.median(b), 1),
               "ratio": round(statistics.median(a) / statistics.median(b), 3),
               "first_step_s": round(first_step_s, 2), "threads": torch.get_num_threads()}
        if index == len(STAGES) - 1:
            row["ratio_vs_default_allocator"] = round(statistics.median(a) / results[-1]["transformers_tokens_per_s"], 3)
        results.append(row)
        print(json.dumps(row), flush=True)
    print(json.dumps({"benchmark": "cpu levers", "preset": args.preset, "batch": args.batch, "seq_len": args.seq,
                      "precision": args.precision, "precision_requested": choice.requested,
                      "cpu_capability": cpu_capability(), "torch": torch.__version__, "results": results}, indent=1))

if __name__ == "__main__":
    main()
