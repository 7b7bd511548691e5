"""glibc's malloc, told to keep freed memory: a training-loop lever on the CPU.

By default glibc serves large allocations (above a threshold that rises with use, up to 32 MiB)
with a fresh `mmap`, unmaps them on `free`, and trims the heap's free top back to the system. A
training step frees and re-allocates the same activation and gradient buffers every step, so every
step page-faults them in again, the kernel zeroing each page: BabyLlama 16M at 8 x 128 in bf16
took about 150,000 minor page faults a step eager, 22,000 compiled. Two settings stop it for the
whole process:

* `M_MMAP_MAX` = 0: every allocation comes from the heap (the logits, over 32 MiB, too);
* `M_TRIM_THRESHOLD` = 2 GiB: freed heap memory stays for the next step.

Measured on the 2-core benchmark machine, each setting in a fresh process (bench/cpu_allocator.py):
eager steps +42% tokens/s (faults: none left), compiled +18%; the peak resident memory 24% / 1%
higher (the heap keeps what it once held). Set `TINYLM_KEEP_FREED_MEMORY=0` to leave glibc's defaults alone.
Without glibc, nothing happens.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4
TRIM_THRESHOLD_BYTES = (1 << 31) - 1     # an int: mallopt takes one

_applied = False


def keep_freed_memory() -> bool:
    """Apply the two settings once per process; True if they are in effect."""
    global _applied
    if _applied:
        return True
    if os.environ.get("TINYLM_KEEP_FREED_MEMORY", "1") == "0":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (macOS; musl's mallopt is a no-op returning 0)
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    _applied = bool(mallopt(M_MMAP_MAX, 0)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES))
    return _applied
