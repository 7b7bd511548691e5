"""Training throughput: tinylm's training step against Hugging Face transformers in a plain loop.

Same config, same batch, same AdamW; each contender in its best setting for the device
(transformers: autocast in the run's precision, SDPA, fused AdamW where the device has it, optional
compile; tinylm: `train.compile: true`, `--eager` for its uncompiled step). The precision is `auto` by
default, resolved as a run resolves it (tinylm.precision: bf16 where the device computes it natively,
else fp32); the JSON says which it was and ATen's CPU kernel level (`cpu_capability`). tinylm's Run tells glibc to keep
freed memory (train/cpu_memory.py) and that holds for the whole process, so transformers, measured
after it, gets that lever too. The two alternate in one process,
round-robin, so machine noise hits both alike. Prints JSON (`--json`: a list, one object per
configuration).

    python bench/throughput.py --json                                  # CPU: BabyLlama 16M, 8 x 128
    python bench/throughput.py --json --configs 16m:128x512 345m:32x512 forgetter:12x512   # a GPU

MFU = (6 x matmul parameters + 12 x layers x attention width x sequence) x tokens/s / peak, the
issue's formula, with the peak measured here by large matmuls in the same precision
(tinylm.compute.measure_peak_flops; `--peak-size` sets their side, small in tests).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import statistics
import time

import torch
import torch.nn.functional as F

from tinylm.compiling import compiled
from tinylm.compute import measure_peak_flops
from tinylm.precision import PRECISIONS, cpu_capability, resolve_precision

PRESETS = {"16m": "babyllama2-16m", "345m": "babyllama2-345m", "forgetter": "forgetter-baby10m"}


def synthetic_batches(vocab: int, batch: int, seq: int, device: torch.device, n: int = 8):
    g = torch.Generator().manual_seed(0)
    return [torch.randint(vocab, (batch, seq + 1), generator=g).to(device) for _ in range(n)]


class SyntheticStream:
    """`next_batch()` over a few fixed random windows, in a loop (what a Run reads its batches from)."""

    def __init__(self, vocab: int, batch: int, seq: int, device: torch.device):
        self.windows = synthetic_batches(vocab, batch, seq, device)
        self.i = 0

    def next_batch(self) -> dict:
        w = self.windows[self.i % len(self.windows)]
        self.i += 1
        return {"input_ids": w[:, :-1], "labels": w[:, 1:]}


def tinylm_stepper(preset: str, batch: int, seq: int, precision: str, device: torch.device, compile_: bool, compile_mode: str = "default"):
    from tinylm.models import build_model, resolve_model_config
    from tinylm.train.loop import train_step
    from tinylm.train.recipe import recipe_from_dict
    from tinylm.train.run import Run

    recipe = recipe_from_dict({"data": {"store": "synthetic", "seq_len": seq}, "model": {"name": preset},
                               "train": {"batch_size": batch, "precision": precision, "lr": 1e-4,
                                         "weight_decay": 0.0, "duration": 10**9, "clip": 1.0,
                                         "compile": compile_, "compile_mode": compile_mode}})
    torch.manual_seed(0)
    model = build_model(resolve_model_config(preset, max_seq_len=max(seq, 256)))
    run = Run(recipe, model, SyntheticStream(model.config.vocab_size, batch, seq, device), [], device, 10**9, [])
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
    return (lambda: train_step(run, scaler)), run.model


def hf_stepper(our_model, batch: int, seq: int, precision: str, device: torch.device, compile_: bool):
    from tinylm.models.hf import to_hf

    hf = to_hf(our_model).to(device)
    hf.train()
    fused = device.type == "cuda"
    opt = torch.optim.AdamW(hf.parameters(), lr=1e-4, weight_decay=0.0, fused=fused or None, foreach=None if fused else True)
    forward = compiled(hf) if compile_ else hf  # pinned vector width, as tinylm compiles (tinylm/compiling.py)
    windows = synthetic_batches(hf.config.vocab_size, batch, seq, device)
    state = {"i": 0}

    def step():
        w = windows[state["i"] % len(windows)]
        state["i"] += 1
        ctx = torch.autocast(device.type, dtype=torch.bfloat16) if precision == "bf16" else contextlib.nullcontext()
        with ctx:
            logits = forward(input_ids=w[:, :-1]).logits
        loss = F.cross_entropy(logits.float().flatten(0, 1), w[:, 1:].flatten())
        loss.backward()
        torch.nn.utils.clip_grad_norm_(hf.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
    return step


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(step, steps: int, tokens_per_step: int, device: torch.device) -> float:
    sync(device)
    t = time.perf_counter()
    for _ in range(steps):
        step()
    sync(device)
    return steps * tokens_per_step / (time.perf_counter() - t)


def model_flops_per_token(model, seq: int) -> float:
    """The issue's MFU numerator per token: 6 x matmul parameters + 12 x layers x attention width x seq."""
    from tinylm.compute import attention_width, matmul_parameters
    trainable, frozen = matmul_parameters(model)
    return 6.0 * (trainable + frozen) + 12.0 * model.config.n_layers * attention_width(model.config) * seq


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bench_config(preset: str, batch: int, seq: int, choice, device: torch.device, args, peak: float) -> dict:
    precision = choice.precision  # resolved (tinylm.precision.PrecisionChoice)
    tokens = batch * seq
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    ours, model = tinylm_stepper(preset, batch, seq, precision, device, args.compile)
    for _ in range(args.warmup):
        ours()
    # Peak memory of tinylm alone: taken before the transformers model exists (CPU: process RSS).
    sync(device)
    memory = peak_memory_mb(device)
    # transformers' peak on CUDA: what it allocates above tinylm's live model and optimizer (its own copy of the
    # weights, its optimizer, its activations). None on CPU, where the process RSS cannot tell the two apart.
    held = torch.cuda.memory_allocated(device) if device.type == "cuda" else 0
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    theirs = hf_stepper(model, batch, seq, precision, device, args.hf_compile)
    for _ in range(args.warmup):
        theirs()
    sync(device)
    theirs_memory = round(peak_memory_mb(device) - held / 2**20, 1) if device.type == "cuda" else None
    a, b = [], []
    for _ in range(args.rounds):
        a.append(measure(ours, args.steps, tokens, device))
        b.append(measure(theirs, args.steps, tokens, device))
    ours_tps, theirs_tps = statistics.median(a), statistics.median(b)
    return {"config": f"{preset} {batch}x{seq}", "device": device_name(device), "precision": precision,
            "precision_requested": choice.requested, "cpu_capability": cpu_capability(),
            "tinylm_tokens_per_s": round(ours_tps, 1), "transformers_tokens_per_s": round(theirs_tps, 1),
            "ratio": round(ours_tps / theirs_tps, 3),
            "mfu": round(model_flops_per_token(model, seq) * ours_tps / peak, 4),
            "transformers_mfu": round(model_flops_per_token(model, seq) * theirs_tps / peak, 4),
            "peak_memory_mb": round(memory, 1), "transformers_peak_memory_mb": theirs_memory, "peak_flops": round(peak), "compile": args.compile,
            "transformers_compile": args.hf_compile, "tinylm_rounds": [round(x, 1) for x in a],
            "transformers_rounds": [round(x, 1) for x in b], "threads": torch.get_num_threads(),
            "load_average": [round(x, 2) for x in os.getloadavg()], "torch": torch.__version__}


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--configs", nargs="+", default=None,
                   help="PRESET:BATCHxSEQ, PRESET one of 16m, 345m, forgetter or any tinylm preset "
                        "(default: 16m:8x128 on CPU; 16m:128x512 345m:32x512 forgetter:12x512 on CUDA)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--precision", nargs="+", default=["auto"], choices=PRECISIONS,
                   help="auto (default): bf16 where the device computes it natively, else fp32")
    p.add_argument("--eager", dest="compile", action="store_false",
                   help="tinylm without train.compile (by default it compiles: its best setting, as the issue asks)")
    p.add_argument("--hf-compile", action="store_true", help="transformers under torch.compile")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--steps", type=int, default=5, help="steps per round per contender")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--json", action="store_true", help="print only the JSON list")
    p.add_argument("--peak-size", type=int, default=None,
                   help="side of the peak-FLOPs matmuls (default 4096 on CUDA, 2048 on CPU; tests use a small one)")
    args = p.parse_args()
    device = torch.device(args.device)
    configs = args.configs or (["16m:128x512", "345m:32x512", "forgetter:12x512"] if device.type == "cuda"
                               else ["16m:8x128"])
    results = []
    for requested in args.precision:
        choice = resolve_precision(requested, device)
        peak = measure_peak_flops(device, choice.precision, size=args.peak_size or (4096 if device.type == "cuda" else 2048))
        for spec in configs:
            name, shape = spec.split(":")
            batch, seq = (int(x) for x in shape.split("x"))
            results.append(bench_config(PRESETS.get(name, name), batch, seq, choice, device, args, peak))
            if not args.json:
                print(json.dumps(results[-1]), flush=True)
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
