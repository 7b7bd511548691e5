"""fp32 CPU training-throughput levers (issue 23), one at a time and cumulative, against transformers.

The bf16 levers (bench/cpu_levers.py) were chosen on a CPU with native bf16. Most CPUs have none and
train in fp32, where the profile (bench/profile_fp32.py, bench/results/profile-fp32-*.json) says
about 70% of a compiled step is `aten::mm`: the same matmuls transformers runs. Levers tried here,
each stage adding one to the previous (tinylm compiled, model and loss together, as `train.compile:
true` runs it):

    baseline                    tinylm as it was: SDPA attention in fp32 (flash kernel), default compile
    +matmul_attention_fp32      attention as two matmuls with a cached causal bias in fp32 too
    +onednn_fp32_as_bf16        torch.backends.mkldnn.matmul.fp32_precision = "bf16": fp32 matmuls in
                                bf16 passes inside oneDNN. Changes numerics; native bf16 CPUs only
                                (an AVX2 CPU has no such kernels, so it should change nothing there).
                                Process-wide, so transformers gets it too at this stage (switching it
                                between the two each round recompiled both: 249 tok/s for transformers).
                                Not carried to the next stage: it changes numerics, and with it set
                                inductor's max-autotune fails ("mix of the legacy and new APIs")
    +max_autotune               `train.compile_mode: max-autotune` (no CUDA graphs on a CPU; inductor's C++ GEMM
                                templates with fused epilogues, chosen by timing)

PREDICTIONS are written before measuring (committed before the results) and printed beside the
measured gain, so the table shows where the guesses were wrong. Each stage alternates rounds with
transformers' LlamaForCausalLM, compiled (`--hf-eager` for eager), in fp32 in the same process.
Prints one JSON line per stage as it finishes, then the whole table.

    ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 python bench/cpu_levers_fp32.py [--rounds 3] [--stages N]
    ... python bench/cpu_levers_fp32.py --stages 1 --threads 1     # thread settings: against a --stages 1 run
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import torch

from throughput import hf_stepper, measure, tinylm_stepper
from tinylm.precision import cpu_capability

STAGES = ["baseline", "+matmul_attention_fp32", "+onednn_fp32_as_bf16", "+max_autotune"]

# Gain over the previous stage predicted (2026-12-03 03:50 UTC, before any measurement), per CPU kind.
# Thread settings (`--threads 1` against the default, one invocation each, the baseline stage only),
# predicted 2026-12-03 09:35 UTC before measuring: matmul-bound steps on 2 quiet cores lose 35-50% of
# tinylm's tokens/s with one thread, and transformers as much, so the ratio moves by under 5%.
THREADS_PREDICTION = "1 thread: -35 to -50% tok/s on 2 quiet cores, ratio within 5%"

PREDICTIONS = {
    "AVX2": {"+matmul_attention_fp32": "+2 to +5%: attention is ~6% of a step, SDPA's flash backward slow at T=128",
             "+onednn_fp32_as_bf16": "0%: no bf16 kernels at AVX2, oneDNN keeps fp32",
             "+max_autotune": "-5 to +5%: matmuls are small (1024 x 256..2048); MKL is hard to beat; minutes to compile"},
    "AVX512": {"+matmul_attention_fp32": "+2 to +5%",
               "+onednn_fp32_as_bf16": "+40 to +100% if aten::mm routes fp32 to oneDNN bf16; numerics change",
               "+max_autotune": "-5 to +5%"},
}


def set_stage(index: int) -> str:
    """Switch on the first `index + 1` levers (but the oneDNN one only at its own stage); the compile mode."""
    from tinylm.models import layers

    layers.CPU_MATMUL_ATTENTION_FP32 = index >= 1
    torch.backends.mkldnn.matmul.fp32_precision = "bf16" if index == 2 else "none"  # not carried on
    return "max-autotune" if index >= 3 else "default"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="babyllama2-16m")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--seq", type=int, default=128)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--stages", type=int, default=len(STAGES), help="run only the first N stages")
    p.add_argument("--first", type=int, default=0, help="start at this stage (the levers before it stay on)")
    p.add_argument("--hf-eager", action="store_true", help="transformers uncompiled (default: compiled)")
    p.add_argument("--threads", type=int, default=0, help="torch threads for both (default: torch's, one per core)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device, tokens = torch.device("cpu"), args.batch * args.seq
    kind = "AVX512" if cpu_capability().startswith("AVX512") else "AVX2"
    theirs, results = None, []
    for index, name in list(enumerate(STAGES))[args.first:args.stages]:
        mode = set_stage(index)
        ours, model = tinylm_stepper(args.preset, args.batch, args.seq, "fp32", device, True, mode)
        if theirs is None:
            theirs = hf_stepper(model, args.batch, args.seq, "fp32", device, not args.hf_eager)
        theirs(), theirs()  # (re)compiled if this stage changed a process-wide setting
        t = time.perf_counter()
        ours()
        first_step_s = time.perf_counter() - t  # includes compilation
        ours()
        a, b = [], []
        for _ in range(args.rounds):  # process-wide settings hold for both (toggling them recompiles both graphs)
            b.append(measure(theirs, args.steps, tokens, device))
            a.append(measure(ours, args.steps, tokens, device))
        row = {"lever": name, "tinylm_tokens_per_s": round(statistics.median(a), 1),
               "transformers_tokens_per_s": round(statistics.median(b), 1),
               "ratio": round(statistics.median(a) / statistics.median(b), 3),
               "first_step_s": round(first_step_s, 2), "threads": torch.get_num_threads(),
               "load_average": [round(x, 2) for x in os.getloadavg()]}
        if results:  # gain over the previous stage, judged on the ratio (robust to load) and on tok/s
            row["gain_ratio"] = round(row["ratio"] / results[-1]["ratio"] - 1, 3)
            row["predicted"] = PREDICTIONS[kind].get(name)
        results.append(row)
        print(json.dumps(row), flush=True)
    print(json.dumps({"benchmark": "cpu levers fp32", "preset": args.preset, "batch": args.batch, "seq_len": args.seq,
                      "precision": "fp32", "cpu_capability": cpu_capability(),
                      "onednn_max_cpu_isa": os.environ.get("ONEDNN_MAX_CPU_ISA"),
                      "transformers_compile": not args.hf_eager, "torch": torch.__version__,
                      "predictions": PREDICTIONS[kind], "threads_prediction": THREADS_PREDICTION,
                      "threads_requested": args.threads or None, "results": results}, indent=1))


if __name__ == "__main__":
    main()
