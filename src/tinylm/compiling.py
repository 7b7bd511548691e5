"""Every `torch.compile` in tinylm goes through `compiled`, so each one gets `compile_options`.

Beneath train, eval and methods (like compute.py): the Run's objective, distill's teachers and the
evaluation scorer all compile, and all share torch's on-disk caches.
"""

from __future__ import annotations

from typing import Callable

import torch


def compile_options(mode: str = "default") -> dict:
    """`torch.compile`'s inductor options for `mode`, with the CPU vector width it compiles for pinned.

    A workaround for torch's compile caches (FX graph and AOTAutograd, on disk in
    `TORCHINDUCTOR_CACHE_DIR`), whose key leaves out the vector ISA inductor picks: with
    `cpp.simdlen` unset it follows `ATEN_CPU_CAPABILITY`, so a process restricted to AVX2 and one
    at AVX-512 find each other's graphs. The cached C++ then steps 8 floats at a time but is built
    with AVX-512 flags, where every full-width store writes 16: past the end of its buffer, and glibc
    aborts ("corrupted size vs. prev_size", bench/throughput.py --precision fp32 after an AVX2 run;
    the tiny test model too). The other way round the kernels write half of each vector and training
    goes on with NaN losses. Pinned, `cpp.simdlen` (512, 256; 1 for no vector ISA) is in both keys, so
    each width has its own entries; the code is the same, since inductor picks the same ISA from it.
    A width the user set in torch._inductor.config is left as it is (it is in the key already).
    """
    import torch._inductor
    from torch._inductor import config as inductor_config
    from torch._inductor.cpu_vec_isa import pick_vec_isa

    options = dict(torch._inductor.list_mode_options(mode))  # what torch.compile(mode=) applies
    if inductor_config.cpp.simdlen is None:
        isa = pick_vec_isa()
        options["cpp.simdlen"] = isa.bit_width() if isa else 1
    return options


def compiled(fn: Callable, mode: str = "default", dynamic: bool | None = None) -> Callable:
    """`torch.compile(fn, mode=mode, dynamic=dynamic)` with the vector width pinned (`compile_options`)."""
    return torch.compile(fn, dynamic=dynamic, options=compile_options(mode))
