"""Where an fp32 CPU training step spends its time: one compiled and one eager step of tinylm, profiled.

Issue 23 asks for the fp32 path to get the bf16 path's care, starting from a profile on each CPU kind
(native AVX-512; AVX2-only, simulated with `ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2`). This
runs `torch.profiler` over a few steps after warm-up and sums the self CPU time of every operator into
a few buckets: matmuls (aten::mm/addmm/bmm, oneDNN), attention (SDPA kernels), cross-entropy/softmax,
optimizer (AdamW, grad-norm clip), elementwise (inductor's fused C++ kernels and eager pointwise ops),
and other. Prints JSON with the buckets in ms per step and as shares, and the top operators.

    python bench/profile_fp32.py [--preset babyllama2-16m] [--batch 8] [--seq 128] [--steps 3] [--precision fp32]
"""

from __future__ import annotations

import argparse
import json
import os
import re

import torch
from torch.profiler import ProfilerActivity, profile

from throughput import tinylm_stepper
from tinylm.precision import PRECISIONS, cpu_capability, resolve_precision

BUCKETS = [  # first match wins
    ("optimizer", re.compile(r"adam|foreach|clip|norm_|_amp_foreach|zero_", re.I)),
    ("attention", re.compile(r"scaled_dot_product|flash_attention|_efficient_attention|sdpa", re.I)),
    ("cross_entropy", re.compile(r"cross_entropy|log_softmax|nll_loss|logsumexp|softmax", re.I)),
    ("matmul", re.compile(r"aten::(mm|addmm|bmm|matmul|linear|baddbmm)$|mkldnn|onednn|_linear", re.I)),
    ("elementwise", re.compile(r"cpp_fused|kernel_cpp|aten::(mul|add|sub|div|exp|silu|rsqrt|pow|neg|cat|copy_|"
                               r"to|_to_copy|mean|sum|where|fill_|masked_fill|tanh|sigmoid|clone|contiguous|"
                               r"embedding|embedding_dense_backward|index|scatter|gather|t|transpose|view|"
                               r"reshape|expand|split|empty|zeros|ones|add_|mul_|_unsafe_view|as_strided)$", re.I)),
]


def bucket(name: str) -> str:
    for label, pattern in BUCKETS:
        if pattern.search(name):
            return label
    return "other"


def profile_step(step, steps: int) -> dict:
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            step()
    events = [e for e in prof.key_averages() if e.self_cpu_time_total > 0]
    totals: dict[str, float] = {}
    for e in events:
        totals[bucket(e.key)] = totals.get(bucket(e.key), 0.0) + e.self_cpu_time_total
    whole = sum(totals.values())
    top = sorted(events, key=lambda e: -e.self_cpu_time_total)[:12]
    return {"ms_per_step": round(whole / 1e3 / steps, 2),
            "buckets_ms": {k: round(v / 1e3 / steps, 2) for k, v in sorted(totals.items(), key=lambda kv: -kv[1])},
            "buckets_share": {k: round(v / whole, 3) for k, v in sorted(totals.items(), key=lambda kv: -kv[1])},
            "top_ops_ms": [[e.key[:60], round(e.self_cpu_time_total / 1e3 / steps, 2), bucket(e.key)] for e in top]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="babyllama2-16m")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--seq", type=int, default=128)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--precision", default="fp32", choices=PRECISIONS[:3])
    args = p.parse_args()
    choice = resolve_precision(args.precision, "cpu")
    out = {"benchmark": "fp32 profile", "preset": args.preset, "batch": args.batch, "seq_len": args.seq,
           "precision": choice.precision, "cpu_capability": cpu_capability(),
           "onednn_max_cpu_isa": os.environ.get("ONEDNN_MAX_CPU_ISA"), "threads": torch.get_num_threads(),
           "load_average": [round(x, 2) for x in os.getloadavg()], "torch": torch.__version__}
    for mode, compile_ in (("compiled", True), ("eager", False)):
        step, _ = tinylm_stepper(args.preset, args.batch, args.seq, choice.precision, torch.device("cpu"), compile_)
        for _ in range(2):
            step()
        out[mode] = profile_step(step, args.steps)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
