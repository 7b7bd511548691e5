"""Compiled training and torch's on-disk compile caches across CPU vector widths.

Inductor's FX graph and AOTAutograd caches (TORCHINDUCTOR_CACHE_DIR) do not key on the vector ISA it
compiles for, which follows ATEN_CPU_CAPABILITY: a process restricted to AVX2 and one at AVX-512 found
each other's graphs, whose C++ was then built for the other width. AVX2's code under AVX-512 flags
stores 16 floats where it stepped 8, past its buffers: glibc aborted (bench/throughput.py --precision
fp32 after an AVX2 run). AVX-512's under AVX2 flags wrote half of each vector: NaN losses. The Run pins
`cpp.simdlen` (tinylm/compiling.py: compile_options), which is in the keys.
"""

import json
import os
import platform
import subprocess
import sys

import pytest
import torch

from tinylm.compiling import compile_options

# A tiny compiled fp32 run: its losses eager and compiled, and whether torch's caches served the graph.
STEPS = r"""
import json, torch
from torch._dynamo.utils import counters
from tinylm.models import build_model, resolve_model_config
from tinylm.train.loop import train_step
from tinylm.train.recipe import recipe_from_dict
from tinylm.train.run import Run

class Batches:
    def __init__(self):
        self.i = 0
    def next_batch(self):
        g = torch.Generator().manual_seed(self.i)
        self.i += 1
        w = torch.randint(97, (4, 17), generator=g)
        return {"input_ids": w[:, :-1], "labels": w[:, 1:]}

def losses(compile_):
    recipe = recipe_from_dict({"data": {"store": "unused", "seq_len": 16},
                               "model": {"name": "L2-4-32x2", "flavour": "llama"},
                               "train": {"batch_size": 4, "duration": 3, "lr": 1e-2, "precision": "fp32",
                                         "compile": compile_}})
    torch.manual_seed(0)
    model = build_model(resolve_model_config("L2-4-32x2", flavour="llama", vocab_size=97, max_seq_len=64))
    run = Run(recipe, model, Batches(), [], torch.device("cpu"), 3, [])
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    return [float(train_step(run, scaler)[0]) for _ in range(3)]

eager, compiled = losses(False), losses(True)
hits = counters["inductor"]["fxgraph_cache_hit"] + counters["aot_autograd"]["autograd_cache_hit"]
print(json.dumps({"capability": torch.backends.cpu.get_cpu_capability(), "eager": eager,
                  "compiled": compiled, "cache_hits": hits}))
"""

AVX2 = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}


def _train(tmp_path, restrict: dict) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in AVX2}
    env.update(restrict, TORCHINDUCTOR_CACHE_DIR=str(tmp_path / "inductor"), TINYLM_CACHE=str(tmp_path / "tinylm"))
    done = subprocess.run([sys.executable, "-c", STEPS], env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, f"exit {done.returncode} under {restrict or 'no restriction'}:\n{done.stderr[-3000:]}"
    result = json.loads(done.stdout.splitlines()[-1])
    torch.testing.assert_close(result["compiled"], result["eager"], rtol=1e-5, atol=0)
    return result


@pytest.mark.slow
@pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64")
                    or not torch.backends.cpu.get_cpu_capability().startswith("AVX512"),
                    reason="needs an AVX-512 CPU, to compile for two vector widths")
def test_compiled_fp32_runs_at_avx512_after_an_avx2_process_filled_the_cache(tmp_path):
    """Before the fix the second process aborted (SIGABRT, "munmap_chunk(): invalid pointer") on
    the tiny model, 4 runs in 4. The third finds the first one's graphs: the caches still serve."""
    assert _train(tmp_path, AVX2)["capability"] == "AVX2"
    assert _train(tmp_path, {})["capability"].startswith("AVX512")
    assert _train(tmp_path, AVX2)["cache_hits"] >= 1


def test_compile_options_pin_the_vector_width_inductor_would_pick():
    """The width is the one inductor picks unpinned (so the code is the same), the mode's options stay,
    and a width the user set is theirs. (The config is changed through its own `patch`: monkeypatch's
    undo left `cpp.simdlen` unknown to later compiles.)"""
    import torch._inductor
    from torch._inductor import config as inductor_config
    from torch._inductor.cpu_vec_isa import pick_vec_isa

    with inductor_config.patch({"cpp.simdlen": None}):
        isa = pick_vec_isa()
        assert compile_options() == {"cpp.simdlen": isa.bit_width() if isa else 1}
        options = compile_options("max-autotune")
        assert options == {**torch._inductor.list_mode_options("max-autotune"), "cpp.simdlen": options["cpp.simdlen"]}
    with inductor_config.patch({"cpp.simdlen": options["cpp.simdlen"]}):
        assert pick_vec_isa() == isa  # pinned, inductor picks the ISA it picked unpinned
    with inductor_config.patch({"cpp.simdlen": 256}):
        assert "cpp.simdlen" not in compile_options()
