"""Measure this device's practical peak FLOP/s once (large square matmuls) and cache it, so every later
run logs MFU (model FLOPs utilisation) in its metrics. Prints JSON.

    python bench/peak_flops.py [--device cpu|cuda] [--precision fp32|bf16|fp16] [--again]
A run on a GPU measures by itself the first time; a known peak can also be given: TINYLM_PEAK_FLOPS=989e12.
"""

from __future__ import annotations

import argparse
import json

import torch

from tinylm.compute import device_key, peak_cache_file, peak_flops


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--precision", default="fp32", choices=("fp32", "bf16", "fp16"))
    p.add_argument("--again", action="store_true", help="measure even if a value is cached")
    args = p.parse_args()
    device = torch.device(args.device)
    value = peak_flops(device, args.precision, again=args.again)
    print(json.dumps({"device": device_key(device, args.precision), "peak_flops": value,
                      "cache": str(peak_cache_file())}, indent=1))


if __name__ == "__main__":
    main()
