"""Fused linear cross-entropy against PyTorch's linear + cross_entropy, at GPT-2's vocabulary (50,257).

A language model's last step, `cross_entropy(hidden @ W.T, targets)`, materialises a tokens x vocab
logits tensor (and its gradient): at 8k tokens and a 50k vocabulary that is 1.6 GB in fp32. Fused
kernels (Liger-Kernel's LigerFusedLinearCrossEntropyLoss, Apple's Cut Cross-Entropy) compute the loss
and its gradients in chunks without it. This measures both sides in one process: milliseconds per
forward+backward and the peak memory above the inputs, on CUDA (the fused kernels are Triton ones;
on CPU only the PyTorch baseline runs, with the fused ones reported as skipped). Prints JSON.

    python bench/fused_ce.py --json                        # CUDA: 8192 tokens, 768 wide, vocab 50257
    python bench/fused_ce.py --json --device cpu --tokens 64 --hidden 32 --vocab 512 --steps 1
"""

from __future__ import annotations

import argparse
import json
import time

import torch
import torch.nn.functional as F


def baseline(x, w, y):
    return F.cross_entropy((x @ w.T).float(), y)


def fused_losses(device: torch.device) -> dict:
    """name -> loss(x, w, y), or name -> the reason it cannot run here."""
    found: dict = {}
    try:
        from liger_kernel.transformers import LigerFusedLinearCrossEntropyLoss
        liger = LigerFusedLinearCrossEntropyLoss()
        found["liger-kernel"] = lambda x, w, y: liger(w, x, y)
    except Exception as e:  # absent, or built against another torch
        found["liger-kernel"] = f"not available: {type(e).__name__}: {e}"[:200]
    try:
        from cut_cross_entropy import linear_cross_entropy
        found["cut-cross-entropy"] = lambda x, w, y: linear_cross_entropy(x, w, y)
    except Exception as e:
        found["cut-cross-entropy"] = f"not available: {type(e).__name__}: {e}"[:200]
    if device.type != "cuda":
        found = {k: v if isinstance(v, str) else "skipped: its kernels need CUDA" for k, v in found.items()}
    return found


def measure(loss_fn, x, w, y, steps: int, warmup: int, device: torch.device) -> dict:
    for _ in range(warmup):
        loss_fn(x, w, y).backward()
    x.grad = w.grad = None
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        held = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
    t = time.perf_counter()
    for _ in range(steps):
        loss = loss_fn(x, w, y)
        loss.backward()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    ms = (time.perf_counter() - t) / steps * 1000
    peak = (torch.cuda.max_memory_allocated(device) - held) / 2**20 if device.type == "cuda" else None
    return {"ms_per_step": round(ms, 3), "peak_memory_mb": None if peak is None else round(peak, 1),
            "loss": round(float(loss.detach()), 5)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--tokens", type=int, default=8192, help="batch x sequence")
    p.add_argument("--hidden", type=int, default=768)
    p.add_argument("--vocab", type=int, default=50257)
    p.add_argument("--dtype", choices=("bf16", "fp32"), default="bf16")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--json", action="store_true", help="print only the JSON object")
    args = p.parse_args()
    device = torch.device(args.device)
    dtype = torch.bfloat16 if args.dtype == "bf16" else torch.float32
    g = torch.Generator().manual_seed(0)
    x = (torch.randn(args.tokens, args.hidden, generator=g) * 0.5).to(device, dtype).requires_grad_()
    w = (torch.randn(args.vocab, args.hidden, generator=g) * 0.02).to(device, dtype).requires_grad_()
    y = torch.randint(args.vocab, (args.tokens,), generator=g).to(device)
    result = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
              "tokens": args.tokens, "hidden": args.hidden, "vocab": args.vocab, "dtype": args.dtype,
              "torch": torch.__version__, "pytorch": measure(baseline, x, w, y, args.steps, args.warmup, device)}
    for name, fn in fused_losses(device).items():
        if isinstance(fn, str):
            result[name] = fn
            continue
        try:
            result[name] = measure(fn, x, w, y, args.steps, args.warmup, device)
        except Exception as e:  # a kernel that does not build here: said, not fatal
            result[name] = f"failed: {type(e).__name__}: {e}"[:200]
        if isinstance(result[name], dict) and result["pytorch"]["peak_memory_mb"]:
            result[name]["memory_vs_pytorch"] = round(result[name]["peak_memory_mb"] /
                                                      result["pytorch"]["peak_memory_mb"], 3)
            result[name]["speed_vs_pytorch"] = round(result["pytorch"]["ms_per_step"] /
                                                     result[name]["ms_per_step"], 3)
        if not args.json:
            print(f"{name}: {result[name]}", flush=True)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
