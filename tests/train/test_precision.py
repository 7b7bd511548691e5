"""`train.precision: auto`: bf16 where the device computes it natively, else fp32; resolved once per
run (again on resume), used by every consumer, said in the first line and in summary.json."""

import json
import os
import platform
import subprocess
import sys
from contextlib import nullcontext

import pytest
import torch
import yaml

from tinylm import precision
from tinylm.precision import resolve_precision

CPU = torch.device("cpu")


@pytest.fixture
def cpu_like(monkeypatch):
    """Make this machine look like an x86 CPU with the given bf16 units and ATen kernel level."""
    def set_(avx512_bf16=False, amx=False, capability="AVX512", onednn_isa=None):
        monkeypatch.setattr(platform, "machine", lambda: "x86_64")
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16)
        monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)
        monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: capability)
        monkeypatch.delenv("ATEN_CPU_CAPABILITY", raising=False)
        if onednn_isa is None:
            monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
        else:
            monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", onednn_isa)
    return set_


@pytest.fixture
def native(monkeypatch):
    """Make the CPU compute bf16 natively (True) or not (False), whatever this machine does."""
    def set_(yes: bool):
        why = "this CPU computes bf16 natively (TEST)" if yes else "no native bf16 on this CPU (TEST)"
        monkeypatch.setattr(precision, "_cpu_bf16", lambda: (yes, why))
    return set_


# -- resolution ------------------------------------------------------------------------------------
@pytest.mark.parametrize("units, capability, onednn_isa, expected, named", [
    ({"avx512_bf16": True}, "AVX512", None, "bf16", "AVX512-BF16"),
    ({"amx": True, "avx512_bf16": True}, "AVX512", None, "bf16", "AMX"),
    ({"avx512_bf16": True}, "AVX512", "AVX512_CORE_BF16", "bf16", "AVX512-BF16"),
    ({"amx": True}, "AVX512", "AVX512_CORE_AMX", "bf16", "AMX"),
    ({}, "AVX2", None, "fp32", "AVX2"),                               # a laptop, an AVX2 EPYC
    ({}, "AVX512", None, "fp32", "AVX512"),                           # AVX512 without its bf16 extension
    ({"avx512_bf16": True}, "AVX2", None, "fp32", "AVX2"),            # ATEN_CPU_CAPABILITY=avx2
    ({"avx512_bf16": True}, "AVX512", "AVX2", "fp32", "AVX2"),        # ONEDNN_MAX_CPU_ISA=AVX2
    ({"avx512_bf16": True}, "AVX512", "AVX512_CORE", "fp32", "AVX512_CORE"),  # oneDNN would emulate
])
def test_auto_is_bf16_only_where_the_cpu_computes_it_natively(cpu_like, units, capability, onednn_isa, expected,
                                                              named):
    cpu_like(capability=capability, onednn_isa=onednn_isa, **units)
    choice = resolve_precision("auto", CPU)
    assert choice.precision == expected and choice.requested == "auto" and choice.warning is None
    assert named in choice.reason and choice.reason.startswith("this CPU" if expected == "bf16" else "no native")
    assert choice.line().startswith(f"precision {expected} (train.precision: auto): ")


def test_explicit_choices_stay_and_emulated_bf16_warns(cpu_like):
    cpu_like(capability="AVX2")
    for asked in ("fp32", "fp16"):
        assert resolve_precision(asked, CPU).precision == asked and resolve_precision(asked, CPU).warning is None
    bf16 = resolve_precision("bf16", CPU)
    assert bf16.precision == "bf16" and "emulated" in bf16.warning and "--set train.precision=auto" in bf16.line()
    assert "times slower than fp32" in bf16.warning  # the expected slowdown, as issue 23 asks
    cpu_like(avx512_bf16=True)
    assert resolve_precision("bf16", CPU).warning is None


def test_cuda_asks_torch_without_emulation(monkeypatch):
    asked = {}

    def supported(including_emulation=True):
        asked["including_emulation"] = including_emulation
        return asked["answer"]
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", supported)
    monkeypatch.setattr(torch.cuda, "device", lambda device: nullcontext())
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device: "Tesla T4")
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device: (7, 5))
    asked["answer"] = False
    choice = resolve_precision("auto", torch.device("cuda", 0))
    assert choice.precision == "fp32" and "Tesla T4" in choice.reason and asked["including_emulation"] is False
    assert resolve_precision("bf16", torch.device("cuda", 0)).warning  # a T4 emulates bf16
    asked["answer"] = True
    assert resolve_precision("auto", torch.device("cuda", 0)).precision == "bf16"


def test_arm_asks_onednn_and_other_devices_stay_fp32(monkeypatch):
    monkeypatch.setattr(platform, "machine", lambda: "aarch64")
    for answer, expected in ((True, "bf16"), (False, "fp32")):
        monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: answer)
        assert resolve_precision("auto", CPU).precision == expected
    assert resolve_precision("auto", torch.device("mps")).precision == "fp32"


@pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"), reason="the variables restrict x86 kernels")
def test_an_avx2_restricted_process_resolves_auto_to_fp32():
    """The variables people set to emulate an AVX2-only machine: there bf16 is emulated (a 1024³ matmul
    ~150x slower than fp32 on an AVX512-BF16 CPU so restricted), and auto must say fp32."""
    code = ("import json, torch; from tinylm.precision import resolve_precision; c = resolve_precision('auto', 'cpu');"
            "print(json.dumps([c.precision, c.reason, torch.backends.cpu.get_cpu_capability()]))")
    env = {**os.environ, "ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120, check=True)
    resolved, reason, capability = json.loads(done.stdout.splitlines()[-1])
    assert (resolved, capability) == ("fp32", "AVX2") and "AVX2" in reason and reason.startswith("no native bf16")


# -- the run and its consumers ---------------------------------------------------------------------
@pytest.mark.parametrize("is_native", [True, False])
def test_a_run_resolves_auto_once_and_every_consumer_uses_it(make_run, native, is_native):
    from tinylm.compute import device_key
    from tinylm.methods.distill import _compute_dtype
    from tinylm.methods.teacher_cache import cache_key
    from tinylm.precision import autocast, run_precision

    native(is_native)
    run = make_run(precision="auto")
    expected = "bf16" if is_native else "fp32"
    assert run.recipe.train.precision == "auto" and run.precision == expected
    assert run.precision_choice.requested == "auto" and "(TEST)" in run.precision_choice.reason
    with autocast(run.device, run_precision(run)):  # as the loop and distill enter it
        logits = run.model(torch.zeros(1, 4, dtype=torch.long))
    dtype = torch.bfloat16 if is_native else torch.float32
    assert logits.dtype == dtype and _compute_dtype(run) == dtype
    assert cache_key(run, [], 4)["precision"] == expected
    assert device_key(CPU, "auto").endswith("bfloat16" if is_native else "float32")
    native(not is_native)  # resolved once: the run does not change its mind
    assert run.precision == expected and _compute_dtype(run) == dtype


@pytest.mark.parametrize("is_native, asked, expected", [(True, "auto", "bf16"), (False, "auto", "fp32"),
                                                         (False, "bf16", "bf16")])
def test_the_first_line_and_summary_say_the_precision_and_why(tiny_recipe, tmp_path, capsys, native, is_native,
                                                              asked, expected):
    from tinylm.cli.main import main
    from tinylm.eval.validation import validation_loss
    from tinylm.loading import load_model

    native(is_native)
    path = tiny_recipe(train={"duration": "2 steps", "log_every": 1, "precision": asked},
                       eval={"every": 0, "windows": 2, "batch_size": 2}, checkpoint={"every": 0})
    out = tmp_path / "r"
    quiet = ["--quiet"] if asked == "bf16" else []  # a warning is printed even then
    assert main(["train", str(path), "--out", str(out), *quiet]) == 0
    first = capsys.readouterr().err.splitlines()[0]
    assert first.startswith(f"precision {expected} (train.precision: {asked}): ") and "(TEST)" in first
    assert ("WARNING" in first and "--set train.precision=auto" in first) == (asked == "bf16")
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["precision"], summary["precision_requested"]) == (expected, asked)
    assert yaml.safe_load((out / "config.yaml").read_text())["train"]["precision"] == asked  # as the user wrote it
    if asked == "auto":  # validation resolves the run's recipe on the model's device, as training did
        from tinylm.train.build import recipe_for_run
        model = load_model(out).model
        store = yaml.safe_load(path.read_text())["data"]["store"]
        assert validation_loss(model, store, recipe=recipe_for_run(out))["precision"] == expected


def test_resuming_resolves_again_on_the_machine_it_resumes_on(tiny_recipe, tmp_path, native):
    from tinylm.runs.execute import execute
    from tinylm.train.recipe import load_recipe

    recipe = load_recipe(str(tiny_recipe(train={"duration": "4 steps", "log_every": 1, "precision": "auto"},
                                         eval={"every": 0, "windows": 2, "batch_size": 2}, checkpoint={"every": 0})))
    native(True)

    def stop(run, record):
        run.stop_requested = run.step == 2
    assert execute(recipe, tmp_path / "r", on_step=stop)["precision"] == "bf16"
    native(False)
    summary = execute(recipe, tmp_path / "r", resume=True)
    assert summary["complete"] and (summary["precision"], summary["precision_requested"]) == ("fp32", "auto")


def test_an_unknown_precision_is_one_line(one_line_error, tiny_recipe, tmp_path):
    path = tiny_recipe(train={"precision": "bf32"})
    one_line_error(["train", str(path), "--out", str(tmp_path / "r")], "train.precision", "'bf32'", "auto")
    one_line_error(["train", str(tiny_recipe()), "--out", str(tmp_path / "r"), "--set", "train.precision=fp8"],
                   "train.precision", "auto, fp32, bf16, fp16")
    assert not (tmp_path / "r").exists()
