"""Attention forward + backward on the CPU: SDPA's kernels against two plain matmuls.

Why `models.layers.matmul_attention` exists: at small-model shapes SDPA's CPU flash backward in
bf16 is slow. Prints JSON, milliseconds per forward+backward of one layer's attention.

    python bench/attention_cpu.py [--batch 8] [--heads 8] [--seq 128] [--head-dim 32]
"""

from __future__ import annotations

import argparse
import json
import time

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

from tinylm.models.layers import matmul_attention


def timed(fn, reps: int) -> float:
    for _ in range(3):
        fn()
    t = time.perf_counter()
    for _ in range(reps):
        fn()
    return (time.perf_counter() - t) / reps * 1000


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--heads", type=int, default=8)
    p.add_argument("--seq", type=int, default=128)
    p.add_argument("--head-dim", type=int, default=32)
    p.add_argument("--reps", type=int, default=30)
    args = p.parse_args()
    shape = (args.batch, args.heads, args.seq, args.head_dim)
    results = []
    for dtype in (torch.float32, torch.bfloat16):
        q, k, v = (torch.randn(shape, dtype=dtype, requires_grad=True) for _ in range(3))
        row = {"dtype": str(dtype).removeprefix("torch."), "shape": list(shape), "threads": torch.get_num_threads()}
        for name, backend in (("sdpa_flash_ms", SDPBackend.FLASH_ATTENTION), ("sdpa_math_ms", SDPBackend.MATH)):
            def sdpa(backend=backend):
                with sdpa_kernel(backend):
                    F.scaled_dot_product_attention(q, k, v, is_causal=True).sum().backward()
            row[name] = round(timed(sdpa, args.reps), 3)
        row["matmul_attention_ms"] = round(timed(
            lambda: matmul_attention(q, k, v, None, True, 0.0).sum().backward(), args.reps), 3)
        results.append(row)
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
