"""FSDP (`train.parallel: fsdp`) against DDP under torchrun, on this machine: what sharding saves and costs.

For each mode, one torchrun launch of N processes builds a Run of the same model (synthetic batches, AdamW
state filled by the timed steps) and measures, per process (the slowest or largest rank):

- `state_mb`: weights + AdamW moments this process holds between steps (local shards under FSDP), the
  figure sharding divides by N; `peak_rss_mb` / `peak_cuda_mb` beside it (the CPU's includes the whole model
  each rank builds before sharding it, and the gathered blocks and gradients of a step);
- `step_s`: median optimizer step (FSDP adds an all-gather per block in forward and backward);
- `checkpoint_s`, `checkpoint_mb_written`: a checkpoint (DDP: rank 0 writes the whole; FSDP: every rank its
  shard, `tinylm.rundir.sharded`), and `restore_s`: reading it back into the run (weights and state);
- `reshard_s`: `set_trainable` (FSDP: gather the weights, build and shard again; DDP: re-wrap).

    python bench/fsdp.py --json                                  # CPU, gloo, 2 processes
    python bench/fsdp.py --json --model L8-8-512x4 --nproc 4     # a machine with 4 GPUs (nccl)

Prints JSON: one object per mode. On CPU (gloo) step times say little about GPUs (NCCL overlaps the gathers
with compute); the state and checkpoint figures carry over. On the 2-core CPU (L4-8-256x4, vocabulary 8192,
4 x 128 per process; two runs, the machine shared): state 96.0 -> 48.0 MB per process, step 0.49-0.55 ->
0.62-0.63 s, checkpoint 0.13-0.31 -> 0.35-0.49 s (96 MB written in all either way), restore 0.14-0.17 ->
0.44-0.46 s, set_trainable 0.04-0.06 -> 0.11-0.13 s, peak RSS 599 -> 672-674 MB (DDP -> FSDP).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch


class Batches:
    """Random windows by (position, rank): every rank its own rows, as the samplers give them."""

    def __init__(self, vocab: int, batch: int, seq: int, rank: int):
        self.vocab, self.batch, self.seq, self.rank, self.position = vocab, batch, seq, rank, 0

    def next_batch(self) -> dict:
        g = torch.Generator().manual_seed(self.position * 1009 + self.rank)
        self.position += 1
        w = torch.randint(self.vocab, (self.batch, self.seq + 1), generator=g)
        return {"input_ids": w[:, :-1], "labels": w[:, 1:]}

    def state_dict(self) -> dict:
        return {"position": self.position}

    def load_state_dict(self, state: dict) -> None:
        self.position = int(state["position"])


def local_mb(tensors) -> float:
    from tinylm.train.fsdp import is_sharded

    return sum((t.to_local() if is_sharded(t) else t).numel() * t.element_size() for t in tensors) / 2**20


def worker(args) -> None:
    import torch.distributed as dist

    from tinylm.models import build_model, resolve_model_config
    from tinylm.train.build import pick_device
    from tinylm.train.checkpoint import restore, save_checkpoint
    from tinylm.train.distributed import init_world
    from tinylm.train.loop import train_step
    from tinylm.train.recipe import recipe_from_dict
    from tinylm.train.run import Run

    device_kind = "cuda" if torch.cuda.is_available() else "cpu"
    world = init_world(device_kind)
    device = pick_device("auto", world)
    recipe = recipe_from_dict({"data": {"store": "unused", "seq_len": args.seq_len},
                               "model": {"name": args.model, "flavour": "llama"},
                               "train": {"batch_size": args.batch_size, "duration": args.steps + 2, "lr": 1e-3,
                                         "precision": args.precision, "parallel": args.mode},
                               "checkpoint": {"keep": 1}})
    torch.manual_seed(0)
    cfg = resolve_model_config(args.model, flavour="llama", vocab_size=args.vocab, max_seq_len=args.seq_len)
    out = Path(args.out)
    run = Run(recipe, build_model(cfg), Batches(args.vocab, args.batch_size, args.seq_len, world.rank), [], device,
              args.steps + 2, [], out_dir=out, world=world)
    scaler = torch.amp.GradScaler(device.type, enabled=False)
    times = []
    for i in range(args.steps + 2):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        train_step(run, scaler)
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    moments = [v for s in run.optimizer.state.values() for v in s.values() if v.dim() > 0]
    mine = {"step_s": statistics.median(times[2:]),
            "state_mb": local_mb([*run.model.parameters(), *moments]),
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    if device.type == "cuda":
        mine["peak_cuda_mb"] = torch.cuda.max_memory_allocated() / 2**20
    world.barrier()
    t = time.perf_counter()
    ckpt = save_checkpoint(run)
    world.barrier()
    mine["checkpoint_s"] = time.perf_counter() - t
    ckpt = out / "checkpoints" / (ckpt.name if ckpt is not None else f"step-{run.step:08d}")
    t = time.perf_counter()
    from tinylm.rundir.checkpoints import load_weights
    run.set_weights(load_weights(ckpt))
    restore(run, ckpt)
    world.barrier()
    mine["restore_s"] = time.perf_counter() - t
    t = time.perf_counter()
    run.set_trainable(lambda name, p: True)
    world.barrier()
    mine["reshard_s"] = time.perf_counter() - t
    every = [None] * world.size
    dist.all_gather_object(every, mine)
    if world.is_main:
        written = sum(p.stat().st_size for p in ckpt.rglob("*") if p.is_file() and "tokenizer" not in p.name)
        report = {k: round(max(r[k] for r in every), 4) for k in mine}
        report.update({"mode": args.mode, "processes": world.size, "device": device.type, "model": args.model,
                       "vocab": args.vocab, "checkpoint_mb_written": round(written / 2**20, 2)})
        Path(args.report).write_text(json.dumps(report))


def launch(args, mode: str, root: Path) -> dict:
    report = root / f"{mode}.json"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={args.nproc}",
           __file__, "--worker", "--mode", mode, "--out", str(root / mode), "--report", str(report),
           "--model", args.model, "--vocab", str(args.vocab), "--batch-size", str(args.batch_size),
           "--seq-len", str(args.seq_len), "--steps", str(args.steps), "--precision", args.precision]
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    subprocess.run(cmd, check=True, env=env, capture_output=True, text=True)
    return json.loads(report.read_text())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="L4-8-256x4", help="a decoder spec (flavour llama)")
    p.add_argument("--vocab", type=int, default=8192)
    p.add_argument("--batch-size", type=int, default=4, help="sequences per process per step")
    p.add_argument("--seq-len", type=int, default=128)
    p.add_argument("--steps", type=int, default=10, help="timed steps (after 2 warm-up steps)")
    p.add_argument("--nproc", type=int, default=2)
    p.add_argument("--precision", default="fp32")
    p.add_argument("--modes", nargs="+", default=["ddp", "fsdp"])
    p.add_argument("--json", action="store_true", help="print only the JSON")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--mode", help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    p.add_argument("--report", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        return worker(args)
    root = Path(tempfile.mkdtemp(prefix="tinylm-fsdp-bench-"))
    try:
        rows = [launch(args, mode, root) for mode in args.modes]
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
