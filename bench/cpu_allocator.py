"""glibc keeping freed memory (`train/cpu_memory.py`), on and off, each in a fresh process.

A fresh process matters: glibc's default mmap threshold rises with what a process has freed, so a
process that already ran other steps flatters the default. Each child trains BabyLlama 16M (8 x 128,
precision auto: bf16 where the CPU computes it natively, else fp32) for a few warm-up steps, then
times steps and counts minor page faults. Prints JSON.

    python bench/cpu_allocator.py [--steps 10] [--eager]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

from tinylm.precision import cpu_capability, resolve_precision

CHILD = """
import json, resource, sys, time, torch
sys.path.insert(0, {bench!r})
from throughput import tinylm_stepper
step, _ = tinylm_stepper("babyllama2-16m", 8, 128, {precision!r}, torch.device("cpu"), {compile_})
for _ in range(3):
    step()
faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
t = time.perf_counter()
for _ in range({steps}):
    step()
elapsed = time.perf_counter() - t
usage = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({{"tokens_per_s": round({steps} * 1024 / elapsed, 1),
                  "minor_faults_per_step": (usage.ru_minflt - faults) // {steps},
                  "peak_rss_mb": round(usage.ru_maxrss / 1024, 1)}}))
"""


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--eager", action="store_true", help="without train.compile")
    a = p.parse_args()
    precision = resolve_precision("auto", "cpu").precision
    code = CHILD.format(bench=os.path.dirname(os.path.abspath(__file__)), compile_=not a.eager, steps=a.steps,
                        precision=precision)
    out = {"benchmark": "cpu allocator", "config": f"babyllama2-16m 8x128 {precision}", "precision": precision,
           "cpu_capability": cpu_capability(), "compile": not a.eager}
    for name, value in (("glibc_default", "0"), ("keep_freed_memory", "1")):
        env = {**os.environ, "TINYLM_KEEP_FREED_MEMORY": value}
        done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
        out[name] = json.loads(done.stdout.strip().splitlines()[-1])
    out["speedup"] = round(out["keep_freed_memory"]["tokens_per_s"] / out["glibc_default"]["tokens_per_s"], 3)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
