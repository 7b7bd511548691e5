"""Which precision to compute in: `auto` is bf16 where the device computes bf16 natively, else fp32.

bf16 halves memory traffic and, with hardware support, doubles matmul speed or better; without it,
it is emulated and ruinous: on a 2-core AVX2 EPYC a 2048³ bf16 matmul took 106 s against 0.55 s
in fp32. Most laptops have no native bf16, so a recipe says `precision: auto` and each machine
decides (again on resume: a run may move). `auto` never picks fp16: it needs loss scaling and
CUDA, a choice a user makes on purpose.

Native bf16 means: CUDA compute capability 8.0+ (`torch.cuda.is_bf16_supported` without
emulation); on x86 CPUs, AVX512-BF16 or AMX instructions *and* kernels allowed to use them (ATen's
dispatch level, `ATEN_CPU_CAPABILITY`, at AVX512, and oneDNN's `ONEDNN_MAX_CPU_ISA` not below
bf16): the variables people set to emulate an AVX2-only machine then give fp32, as that machine
would; on ARM CPUs, what oneDNN reports (BF16 instructions, in builds with the Arm Compute
Library). MPS and anything else: fp32.

Beneath train and eval (like compute.py): it knows devices, not runs, except `run_precision`.
"""

from __future__ import annotations

import contextlib
import os
import platform
from dataclasses import dataclass

import torch

from tinylm.errors import UserError

PRECISIONS = ("auto", "fp32", "bf16", "fp16")

# oneDNN ISA names (ONEDNN_MAX_CPU_ISA) at or above the first with bf16 instructions
_ONEDNN_BF16_ISAS = ("BF16", "AMX", "FP16", "AVX10")


@dataclass(frozen=True)
class PrecisionChoice:
    requested: str          # as the recipe says: auto | fp32 | bf16 | fp16
    precision: str          # what runs: fp32 | bf16 | fp16
    reason: str             # why, in a few words ("this CPU computes bf16 natively (AVX512-BF16)")
    warning: str | None = None  # an explicit choice this device does badly (bf16 emulated)

    def line(self) -> str:
        """The run's first printed line: what it computes in and why."""
        text = f"precision {self.precision} (train.precision: {self.requested}): {self.reason}"
        return f"{text}; WARNING: {self.warning}" if self.warning else text

    def to_dict(self) -> dict:
        """For summary.json: the resolved precision, the requested one and why."""
        return {"precision": self.precision, "precision_requested": self.requested, "precision_reason": self.reason}


def torch_dtype(precision: str) -> torch.dtype:
    """The dtype a resolved precision computes in (fp32 for anything else)."""
    return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision, torch.float32)


def autocast(device: torch.device, precision: str):
    """bf16 / fp16 autocast on `device` in a resolved precision; none in fp32. Training's forward,
    its teachers' and validation's all enter it, so they compute alike."""
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=torch_dtype(precision))


def native_bf16(device: torch.device | str) -> tuple[bool, str]:
    """(whether `device` computes bf16 natively, a few words on what decided it)."""
    device = torch.device(device)
    if device.type == "cuda":
        return _cuda_bf16(device)
    if device.type == "cpu":
        return _cpu_bf16()
    return False, f"no native bf16 known on {device.type}"


def resolve_precision(requested: str, device: torch.device | str) -> PrecisionChoice:
    """`auto` to bf16 or fp32 for this device, with the reason; an explicit precision stays, with a
    warning when it is bf16 on a device that only emulates it."""
    if requested not in PRECISIONS:
        raise UserError(f"precision {requested!r}: choose one of {', '.join(PRECISIONS)}")
    if requested in ("fp32", "fp16"):
        return PrecisionChoice(requested, requested, "asked for explicitly")
    native, why = native_bf16(device)
    if requested == "auto":
        return PrecisionChoice(requested, "bf16" if native else "fp32", why)
    if native:
        return PrecisionChoice(requested, "bf16", why)
    return PrecisionChoice(requested, "bf16", why, warning=f"bf16 is emulated on this device and slow{_slowdown(device)}: "
                           "use `--set train.precision=auto` (fp32 here)")


def _slowdown(device: torch.device | str) -> str:
    """The expected cost of emulated bf16, where it has been measured (issue 23: a warning says how slow)."""
    if torch.device(device).type != "cpu":
        return ""
    return (" (matmuls tens to hundreds of times slower than fp32: 24x at 512^3 and 190x at 2048^3 on an "
            "AVX2 EPYC)")


def run_precision(run) -> str:
    """The precision a run computes in: `Run.precision`, resolved once when the run was built. A
    stand-in that carries only a recipe and a device (a test's, a tool's) is resolved here."""
    precision = getattr(run, "precision", None)
    return precision or resolve_precision(run.recipe.train.precision, run.device).precision


def cpu_capability() -> str:
    """ATen's CPU kernel level: DEFAULT, AVX2, AVX512 (x86), SVE256 (ARM), ... (ATEN_CPU_CAPABILITY lowers it)."""
    return torch.backends.cpu.get_cpu_capability()


# -- devices ---------------------------------------------------------------------------------------
def _cuda_bf16(device: torch.device) -> tuple[bool, str]:
    with torch.cuda.device(device):
        native = torch.cuda.is_bf16_supported(including_emulation=False)
    major, minor = torch.cuda.get_device_capability(device)
    gpu = f"{torch.cuda.get_device_name(device)}, compute capability {major}.{minor}"
    return native, (f"this GPU computes bf16 natively ({gpu})" if native else f"no native bf16 on this GPU ({gpu})")


def _cpu_bf16() -> tuple[bool, str]:
    if platform.machine().lower() in ("arm64", "aarch64"):
        return _arm_bf16()
    capability = cpu_capability()
    units = [name for name, has in (("AMX", torch.cpu._is_amx_tile_supported),
                                    ("AVX512-BF16", torch.cpu._is_avx512_bf16_supported)) if has()]
    if not units:
        return False, f"no native bf16 on this CPU ({capability})"
    if not capability.startswith("AVX512"):  # ATEN_CPU_CAPABILITY=avx2, or a build without AVX512 kernels
        source = ", as ATEN_CPU_CAPABILITY asks" if os.environ.get("ATEN_CPU_CAPABILITY") else ""
        return False, f"no native bf16 on this CPU ({capability}{source})"
    isa = os.environ.get("ONEDNN_MAX_CPU_ISA", "").upper()
    if isa and isa not in ("ALL", "DEFAULT") and not any(tag in isa for tag in _ONEDNN_BF16_ISAS):
        return False, f"no native bf16 on this CPU ({isa}, as ONEDNN_MAX_CPU_ISA asks)"
    return True, f"this CPU computes bf16 natively ({units[0]})"


def _arm_bf16() -> tuple[bool, str]:
    """torch exposes ARM's BF16 instructions only through oneDNN (builds with the Arm Compute Library)."""
    try:
        native = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        native = False
    if native:
        return True, "this CPU computes bf16 natively (ARM BF16)"
    return False, f"no native bf16 known on this ARM CPU ({cpu_capability()})"
