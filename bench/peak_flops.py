"""Measure this device's practical peak FLOP/s once (large square matmuls) and cache it, so every later
run logs MFU (model FLOPs utilisation) in its metrics. Prints JSON.

    python bench/peak_flops.py [--device cpu|cuda] [--precision auto|fp32|bf16|fp16] [--size N] [--again]
The precision is `auto` by default, resolved as a run resolves it (bf16 where the device computes it
natively, else fp32: an emulated bf16 matmul takes minutes on an AVX2 CPU); the JSON says which it was
and ATen's CPU kernel level. A run on a GPU measures by itself the first time; a known peak can also
be given: TINYLM_PEAK_FLOPS=989e12.
"""

from __future__ import annotations

import argparse
import json

import torch

from tinylm.compute import device_key, peak_cache_file, peak_flops
from tinylm.precision import PRECISIONS, cpu_capability, resolve_precision


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--precision", default="auto", choices=PRECISIONS)
    p.add_argument("--size", type=int, default=None, help="matmul side (default 8192 on CUDA, 1024 on CPU)")
    p.add_argument("--again", action="store_true", help="measure even if a value is cached")
    args = p.parse_args()
    device = torch.device(args.device)
    choice = resolve_precision(args.precision, device)
    value = peak_flops(device, choice.precision, again=args.again, size=args.size)
    print(json.dumps({"device": device_key(device, choice.precision), "peak_flops": value,
                      "precision": choice.precision, "precision_requested": args.precision,
                      "precision_reason": choice.reason, "cpu_capability": cpu_capability(),
                      "cache": str(peak_cache_file())}, indent=1))


if __name__ == "__main__":
    main()
