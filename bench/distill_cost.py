"""What distillation costs: a student's training step alone, with 1 and 2 online teachers of its own
size, and with 2 teachers read from distill's top-k cache (first pass writing it, second reading it).

The prediction is the FLOPs ratio: each teacher's forward (2 x matmul parameters + attention, per
`tinylm.compute.forward_flops_per_token`) over the student's training step (6 x + attention,
`flops_per_token`), about 1/3 per same-size teacher. The measured overhead also pays for the
softmax of the teachers' mean logits and the KL term the objective fuses with its cross-entropy,
which FLOPs counts leave out. Configurations alternate round by round in one process, so machine
noise hits them alike; the median step time is reported.
The teachers are in-memory models (distill's loss path and cache exactly as in training; only the
loading from run directories is skipped). Prints JSON.

    OMP_NUM_THREADS=1 python bench/distill_cost.py [--spec L4-4-128x4] [--vocab 8000] [--batch 8] [--seq 128]
    python bench/distill_cost.py --spec babyllama2-16m --vocab 16000 --precision bf16 [--compile]
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import torch

from throughput import SyntheticStream
from tinylm.precision import cpu_capability


def make_run(spec: str, vocab: int, batch: int, seq: int, methods: list, seed: int = 0,
             precision: str = "fp32", compile_: bool = False):
    from tinylm.models import build_model, resolve_model_config
    from tinylm.train.recipe import recipe_from_dict
    from tinylm.train.run import Run

    recipe = recipe_from_dict({"data": {"store": "synthetic", "seq_len": seq}, "model": {"name": spec},
                               "train": {"batch_size": batch, "lr": 1e-4, "duration": 10**9,
                                         "precision": precision, "compile": compile_}})
    torch.manual_seed(seed)
    model = build_model(resolve_model_config(spec, vocab_size=vocab, max_seq_len=seq))
    # the same windows at the same step in every configuration: the cache-read run meets the write run's batches
    batches = SyntheticStream(vocab, batch, seq, torch.device("cpu"))
    return Run(recipe, model, batches, [], torch.device("cpu"), 10**9, methods)


def distill_method(teachers: list, cache_dir: Path | None, top_k: int):
    from tinylm.compute import forward_flops_per_token
    from tinylm.eval.ensemble import MeanLogits
    from tinylm.methods import build_methods
    from tinylm.methods.teacher_cache import TeacherCache

    options = {"teachers": ["in-memory"], **({"cache": {"top_k": top_k}} if cache_dir else {})}
    method = build_methods([{"distill": options}])[0]
    method.teacher = MeanLogits(teachers).eval().requires_grad_(False)
    method.teacher_flops_per_token = sum(forward_flops_per_token(t, t.config.max_seq_len) for t in teachers)
    if cache_dir is not None:
        method.cache = TeacherCache(cache_dir, {"top_k": top_k, "bench": True}, torch.device("cpu"))
    return method


def main() -> None:
    from tinylm.compute import flops_per_token, forward_flops_per_token
    from tinylm.train.loop import train_step

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--spec", default="L4-4-128x4")
    p.add_argument("--vocab", type=int, default=8000)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--seq", type=int, default=128)
    p.add_argument("--top-k", type=int, default=64)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--steps", type=int, default=4, help="steps per configuration per round")
    p.add_argument("--precision", default="fp32", choices=["auto", "fp32", "bf16"],
                   help="auto: bf16 where this CPU computes it natively, else fp32 (the JSON says which)")
    p.add_argument("--compile", action="store_true", help="train.compile: student, teachers and KL compiled")
    a = p.parse_args()

    teachers = [make_run(a.spec, a.vocab, a.batch, a.seq, [], seed=s).model.eval() for s in (1, 2)]
    tmp = Path(tempfile.mkdtemp(prefix="distill-cost-"))
    configs = {
        "student": [],
        "1_teacher": [distill_method(teachers[:1], None, a.top_k)],
        "2_teachers": [distill_method(teachers, None, a.top_k)],
        "2_teachers_cache_write": [distill_method(teachers, tmp, a.top_k)],
        "2_teachers_cache_read": [distill_method(teachers, tmp, a.top_k)],  # same steps, right after the write
    }
    runs = {name: make_run(a.spec, a.vocab, a.batch, a.seq, methods, precision=a.precision, compile_=a.compile)
            for name, methods in configs.items()}
    for run in runs.values():
        run.emit("start")  # distill compiles its teachers and KL here when the run compiles
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    times: dict[str, list[float]] = {name: [] for name in runs}
    forward_s: list[float] = []       # the teachers' mean logits
    distribution_s: list[float] = []  # the same, and their softmax: the soft targets distill hands the objective
    for round_ in range(a.rounds + 1):  # round 0 warms up
        for name, run in runs.items():
            t = time.perf_counter()
            for _ in range(a.steps):
                train_step(run, scaler)
            if round_:
                times[name].append((time.perf_counter() - t) / a.steps)
        if round_:  # the teachers' forward alone, timed like the steps: what distill cannot avoid paying
            batch = runs["2_teachers"].batches.next_batch()
            method = configs["2_teachers"][0]
            for timed, alone in ((forward_s, method._teacher_logits), (distribution_s, method._teacher_distribution)):
                t = time.perf_counter()
                with torch.no_grad():
                    for _ in range(a.steps):
                        alone(runs["2_teachers"], batch)  # under the run's autocast, as in training
                timed.append((time.perf_counter() - t) / a.steps)
    step_s = {name: statistics.median(v) for name, v in times.items()}
    student = runs["student"].model
    train_flops = flops_per_token(student, a.seq)
    teacher_fwd = forward_flops_per_token(teachers[0], a.seq)
    hits = {name: configs[name][0].cache.take_counts() for name in ("2_teachers_cache_write", "2_teachers_cache_read")}
    cache_bytes = sum(f.stat().st_size for f in tmp.rglob("step-*.safetensors"))
    cache_steps = len(list(tmp.rglob("step-*.safetensors")))
    shutil.rmtree(tmp, ignore_errors=True)
    out = {
        "model": {"spec": a.spec, "vocab": a.vocab, "batch": a.batch, "seq": a.seq,
                  "parameters": sum(p.numel() for p in student.parameters())},
        "precision": runs["student"].precision, "precision_requested": a.precision,
        "cpu_capability": cpu_capability(), "compile": a.compile, "threads": torch.get_num_threads(),
        "torch": torch.__version__, "machine": platform.processor() or platform.machine(),
        "rounds": a.rounds, "steps_per_round": a.steps,
        "step_s": {k: round(v, 4) for k, v in step_s.items()},
        "flops_per_token": {"student_train_step": train_flops, "teacher_forward": teacher_fwd},
        "teacher_forward_over_student_step": {"1": round(teacher_fwd / train_flops, 4),
                                              "2": round(2 * teacher_fwd / train_flops, 4)},
        "overhead_over_student": {
            "predicted_flops": {"1_teacher": round(teacher_fwd / train_flops, 4),
                                "2_teachers": round(2 * teacher_fwd / train_flops, 4),
                                "2_teachers_cache_read": 0.0},
            "measured": {k: round(v / step_s["student"] - 1, 4) for k, v in step_s.items() if k != "student"},
            # the 2 teachers' forward passes timed alone (their mean logits), and with the softmax of that
            # mean (the soft targets); the overhead beyond them is the KL term in the objective
            "2_teachers_forward_measured": round(statistics.median(forward_s) / step_s["student"], 4),
            "2_teachers_soft_targets_measured": round(statistics.median(distribution_s) / step_s["student"], 4),
        },
        "cache": {"top_k": a.top_k, "mb_per_step": round(cache_bytes / max(1, cache_steps) / 2**20, 3),
                  "read_hits_misses": hits["2_teachers_cache_read"],
                  "write_hits_misses": hits["2_teachers_cache_write"]},
        "note": "compare ratios, not absolute times: they move with the machine's load",
    }
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
