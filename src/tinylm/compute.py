"""FLOPs accounting, so runs are compared at equal compute rather than equal steps.

Model FLOPs per trained token, counted for the model *as it is now* (depth and trainability):

* every matmul weight (block linears, the output layer — tied or not) costs 2 per parameter
  forward (Kaplan et al. 2020; Chinchilla);
* backward has two halves of 2 each: the weight gradient, only where the weight trains, and the
  input gradient, only where something that trains lies *below* (earlier in the network) and so
  needs the gradient to flow through. Frozen layers under every trainable one cost no backward at
  all; frozen layers above a trainable one cost 2 (GROW's phase 1 with trainable embeddings pays
  this for every frozen block). A fully trainable model comes to the familiar 6 x parameters;
* attention scores and values: 2 x width per (query, key) pair for QK^T and as much for AV; a
  causal query sees (ctx + 1) / 2 keys on average, so 2 x ctx x width forward per layer (4 x for
  bidirectional encoders); the backward is twice that where gradients flow into the layer's q/k/v.

A masked LM that heads only its labelled positions (`Encoder.forward(at=)`) runs its output head (the
MLM transform and the vocabulary decoder) at that share of the tokens: `head_fraction` scales those
weights' FLOPs (the run passes its masking probability; 1 wherever the full head runs).

Not counted: embedding lookups, norms, activations, softmax, the optimizer (all O(width) per
token); BERT's classification pooler (not in the MLM forward). "Below" is the parameters'
registration order, which is the forward order of every tinylm model (in a parallel-residual block
the MLP counts as above the attention: a tiny over-count only when one of them alone is frozen).

Also here: the incremental-training paper's closed form (Li et al., "On the effectiveness of
incremental training of large language models"), equal-compute points between runs, and MFU
(achieved model FLOPs over the device's peak).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import time
from pathlib import Path

import torch
from torch import nn

from tinylm.cache import cache_dir
from tinylm.precision import cpu_capability, resolve_precision, torch_dtype

AFTER_HEAD = ("mlm_bias", "pooler.", "classifier.")  # used after (or beside) the output matmul, never below it
NOT_IN_LM_FORWARD = ("pooler", "classifier")          # the encoder's sequence-classification head
OUTPUT_HEAD = ("mlm_transform.", "lm_head.", "embed_tokens.weight (tied output)")  # per predicted position


def _matmuls(model: nn.Module) -> list[tuple[str, nn.Parameter, float]]:
    """(name, weight, position) of every matmul weight in the LM forward, position = forward order."""
    order = {n: i for i, (n, _) in enumerate(model.named_parameters())}
    out = []
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear) and not name.startswith(NOT_IN_LM_FORWARD):
            out.append((f"{name}.weight", module.weight, order[f"{name}.weight"]))
    if getattr(model, "lm_head", None) is None and getattr(model, "embed_tokens", None) is not None:
        out.append(("embed_tokens.weight (tied output)", model.embed_tokens.weight, math.inf))
    return out


def _first_trainable(model: nn.Module) -> float:
    """Forward position of the lowest trainable parameter (inf: nothing trains)."""
    for i, (name, p) in enumerate(model.named_parameters()):
        if p.requires_grad and not name.startswith(AFTER_HEAD):
            return i
    return math.inf


def flops_breakdown(model: nn.Module, seq_len: int, head_fraction: float = 1.0) -> dict[str, float]:
    """Training FLOPs per token by kind; `total` is what a run adds per trained token. `head_fraction`: the
    share of positions the output head runs at (a masked LM heading its labelled positions only)."""
    lowest = _first_trainable(model)
    out = dict.fromkeys(("forward", "backward_weights", "backward_inputs", "attention_forward",
                         "attention_backward"), 0.0)
    for name, weight, position in _matmuls(model):
        n = weight.numel() * (head_fraction if name.startswith(OUTPUT_HEAD) else 1.0)
        out["forward"] += 2.0 * n
        if weight.requires_grad:
            out["backward_weights"] += 2.0 * n
        if lowest < position:
            out["backward_inputs"] += 2.0 * n
    cfg = model.config
    per_layer = (2.0 if cfg.kind == "decoder" else 4.0) * seq_len * attention_width(cfg)
    order = {n: i for i, (n, _) in enumerate(model.named_parameters())}
    for i in range(len(model.layers)):
        out["attention_forward"] += per_layer
        if lowest < order[f"layers.{i}.attn.o_proj.weight"]:  # gradients reach this layer's q, k, v
            out["attention_backward"] += 2.0 * per_layer
    out["total"] = sum(out.values())
    return out


def flops_per_token(model: nn.Module, seq_len: int, head_fraction: float = 1.0) -> float:
    """Training FLOPs per token for the model as it is now (depth and trainability included)."""
    return flops_breakdown(model, seq_len, head_fraction)["total"]


def forward_flops_per_token(model: nn.Module, seq_len: int) -> float:
    """Inference FLOPs per token (teachers, evaluation)."""
    b = flops_breakdown(model, seq_len)
    return b["forward"] + b["attention_forward"]


def matmul_parameters(model: nn.Module) -> tuple[int, int]:
    """(trainable, frozen) parameters used in matrix multiplies per token."""
    trainable = frozen = 0
    for _, weight, _ in _matmuls(model):
        if weight.requires_grad:
            trainable += weight.numel()
        else:
            frozen += weight.numel()
    return trainable, frozen


def attention_width(config) -> int:
    head_dim = getattr(config, "head_dim", None) or config.d_model // config.n_heads
    return config.n_heads * head_dim


# -- the incremental-training paper's closed form ---------------------------------------------------
def incremental_cost(tokens: float, cost_per_layer: float, layers: int, stages: int) -> float:
    """C_inc = T c L (3S + 5) / (4S): S stages of two equal phases over T tokens (eq. in sec. III-F).

    The paper counts a forward and a backward pass as one `c` each per layer and token, phase 1's
    backward over the new layers only, and nothing for embeddings, output layer or attention.
    """
    return tokens * cost_per_layer * layers * (3 * stages + 5) / (4 * stages)


def incremental_closed_form(stages: int, baseline_steps: float = 10_000) -> dict:
    """The paper's continual-training length that brings incremental training to the baseline's compute.

    With T_inc = T: C_inc / C_base = (3S + 5) / (8S), so T_cont = 5/8 (1 - 1/S) T and the equal-compute
    point is T + T_cont steps (14,688 / 15,469 / 15,729 for S = 4 / 8 / 12 against 10,000).
    """
    ratio = incremental_cost(1, 1, 1, stages) / 2.0  # C_base = 2 T L c
    continual = 5 / 8 * (1 - 1 / stages) * baseline_steps
    return {"stages": stages, "baseline_steps": baseline_steps, "cost_ratio": ratio, "continual_steps": continual,
            "equal_compute_step": math.floor(baseline_steps + continual + 0.5)}


# -- equal-compute points -----------------------------------------------------------------------------
def flops_at_step(curve: list[tuple[float, float]], step: float) -> float | None:
    """Cumulative FLOPs at `step` on a (step, flops) curve, linear between points (exact between a run's
    logged points: FLOPs per step only change at primitives, which log a point). None past the end."""
    return _interpolate(curve, step, 0, 1)


def step_at_flops(curve: list[tuple[float, float]], flops: float) -> float | None:
    """The (fractional) step at which a (step, flops) curve reaches `flops`; None if it never does."""
    return _interpolate(curve, flops, 1, 0)


def _interpolate(curve, x: float, xi: int, yi: int) -> float | None:
    points = sorted(set(curve))
    for a, b in zip(points, points[1:]):
        if a[xi] <= x <= b[xi]:
            if b[xi] == a[xi]:
                return float(a[yi])
            return a[yi] + (b[yi] - a[yi]) * (x - a[xi]) / (b[xi] - a[xi])
    if points and points[0][xi] == x:
        return float(points[0][yi])
    return None


def equal_compute_points(reference: list[tuple[float, float]], curves: dict[str, list[tuple[float, float]]],
                         at_step: float | None = None) -> dict:
    """For each run, the step at which its cumulative FLOPs equal the reference's at `at_step`.

    `reference` and `curves` are (step, flops) curves (`tinylm.rundir.curves.flops_curve`); `at_step`
    defaults to the reference's last step. A run that never gets there has `step: None`.
    """
    at = max(s for s, _ in reference) if at_step is None else at_step
    budget = flops_at_step(reference, at)
    if budget is None:
        raise ValueError(f"the reference run has no FLOPs logged up to step {at}")
    points = {}
    for name, curve in curves.items():
        step = step_at_flops(curve, budget)
        points[name] = {"step": step, "reached": step is not None}
    return {"reference_step": at, "flops": budget, "points": points}


# -- MFU ----------------------------------------------------------------------------------------------
def peak_cache_file() -> Path:
    return cache_dir() / "peak_flops.json"


def device_key(device: torch.device, precision: str = "auto") -> str:
    """What a measured peak belongs to: the device model (or CPU, its kernel level and thread count) and
    the dtype `precision` resolves to there (`auto`: bf16 where native, else fp32; tinylm.precision)."""
    device = torch.device(device)
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    elif device.type == "cpu":  # the kernel level: a peak measured under ATEN_CPU_CAPABILITY=avx2 is another CPU's
        name = f"cpu {platform.machine()} {cpu_capability()} {torch.get_num_threads()} threads"
    else:
        name = device.type
    dtype = torch_dtype(resolve_precision(precision, device).precision)
    return f"{name} | {str(dtype).removeprefix('torch.')}"


def known_peak_flops(device: torch.device, precision: str = "auto") -> float | None:
    """The peak the user gave (env TINYLM_PEAK_FLOPS, FLOP/s per device) or a cached measurement; no
    measuring here: `peak_flops` measures (a run does so itself only on CUDA, where it takes a second)."""
    given = os.environ.get("TINYLM_PEAK_FLOPS")
    if given:
        return float(given)
    try:
        return json.loads(peak_cache_file().read_text()).get(device_key(device, precision))
    except (OSError, ValueError):
        return None


def measure_peak_flops(device: torch.device, precision: str = "auto", size: int | None = None,
                       seconds: float = 1.0) -> float:
    """Achieved FLOP/s of large square matmuls: the practical peak a training step could reach.

    `precision` is resolved as a run resolves it (`auto`: bf16 only where the device computes it
    natively: an emulated bf16 matmul of 1024³ takes seconds on an AVX2 CPU). A small `size` keeps
    tests fast (the number then is a lower bound).
    """
    device = torch.device(device)
    dtype = torch_dtype(resolve_precision(precision, device).precision)
    n = size or (8192 if device.type == "cuda" else 1024)
    g = torch.Generator(device=device).manual_seed(0)  # its own generator: the run's RNG stream is untouched
    a = torch.randn(n, n, device=device, dtype=dtype, generator=g)
    b = torch.randn(n, n, device=device, dtype=dtype, generator=g)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for _ in range(3):
        a @ b
    sync()
    count, start = 0, time.perf_counter()
    while True:
        a @ b
        count += 1
        if count % 4 == 0:
            sync()
            if time.perf_counter() - start >= seconds:
                break
    return 2.0 * n**3 * count / (time.perf_counter() - start)


def peak_flops(device: torch.device, precision: str = "auto", measure: bool = True,
               again: bool = False, size: int | None = None) -> float | None:
    """Known peak, else (with `measure`) a matmul benchmark, measured once and cached per device
    (`again`: measure and re-cache even when known; `size`: the matmuls' side, see `measure_peak_flops`)."""
    known = None if again else known_peak_flops(device, precision)
    if known is not None or not (measure or again):
        return known
    value = measure_peak_flops(device, precision, size)
    path = peak_cache_file()
    try:
        cache = json.loads(path.read_text()) if path.exists() else {}
    except ValueError:
        cache = {}
    cache[device_key(device, precision)] = value
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps(cache, indent=1))
        tmp.replace(path)
    except OSError as e:  # a cache, not a result: a read-only TINYLM_CACHE only means measuring again next time
        import logging
        logging.getLogger(__name__).warning("could not cache the measured peak in %s (%s); set TINYLM_CACHE to a "
                                            "writable directory to keep it", path, e.strerror or e)
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
    return value


def mfu(flops_per_s: float, peak: float | None, devices: int = 1) -> float | None:
    """Model FLOPs utilisation: achieved model FLOPs per second over the peak of all devices."""
    if not peak:
        return None
    return flops_per_s / (peak * devices)
