"""Checkpoints: everything a run needs to continue bit for bit, and nothing that unpickles code.

    checkpoints/step-00000040/
        model.safetensors      weights
        model_config.json      the model as it is now (grown layers included)
        state.json/.safetensors  optimizer moments by parameter name, schedule, sampler position,
                               counters, RNG, method states, snapshot table, frozen parameters
A run sharded over N processes (`train.parallel: fsdp`) writes `shards/` instead of model.safetensors
and of the moments in state.safetensors: each rank its own slices (`tinylm.rundir.sharded`, safetensors
through torch.distributed.checkpoint), resumable on any number of processes; the rest as above, by rank 0.
A checkpoint is assembled in `.tmp-step-...` and renamed into place, and `latest` is replaced
atomically: a crash at any moment leaves the previous checkpoint intact. state.json is written last
and records the SHA-256 of every other file (hashed as each is written), so a reader can tell a
complete `.tmp-step-N` and a flipped byte. Reading lives in `tinylm.rundir.checkpoints`.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import torch
from safetensors.torch import save_file

from tinylm.disk_space import is_no_space, no_space
from tinylm.errors import UserError
from tinylm.rundir.checkpoints import CHECKPOINTS, SHARDED_OPTIMIZER, checkpoint_fix, load_state, state_summary
from tinylm.rundir.files import sha256_file
from tinylm.rundir.serialize import save_tree
from tinylm.rundir.sharded import SHARDS, shard_files, write_shards


def _rng_state() -> dict:
    state = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["cpu"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def run_state(run) -> dict:
    return {
        "counters": {"step": run.step, "tokens": run.tokens, "flops": run.flops, "finished_early": run.finished_early,
                     "total_steps": run.total_steps, "wall_s": run.wall_s,
                     # the run's end is logged (final eval, `end` event): a checkpoint at the last step before
                     # it is a run still to finish; and the metrics lines written so far, the ones a resume keeps
                     "ended": run.ended, "metrics_lines": run.metrics.lines},
        "hparams": dict(run.hparams),
        "lr_scales": dict(run.lr_scales),
        "schedule": run.schedule.state_dict(),
        "batches": run.batches.state_dict(),
        "optimizer": run.optimizer_state(),  # frozen parameters' parked state included
        "rng": _rng_state(),
        "methods": [{"name": m.name, "state": m.state_dict()} for m in run.methods],
        "snapshots": {k: v for k, v in run.snapshots.items() if isinstance(v, str)},
        "word_checkpoints": run.word_checkpoints.state_dict(),  # milestone label -> the step that holds it
        "frozen": [n for n, p in run.model.named_parameters() if not p.requires_grad],
    }


def save_checkpoint(run) -> Path | None:
    """Write a checkpoint of the current step (rank 0 only); returns its directory."""
    run.word_checkpoints.record(run.step, run.words_seen)  # this checkpoint holds the words milestones now reached
    state = run_state(run)  # every rank builds it (cheap), so collective calls stay in step
    if run.out_dir is None:
        run.world.barrier()
        return None
    root = run.out_dir / CHECKPOINTS
    name = f"step-{run.step:08d}"
    final, tmp = root / name, root / f".tmp-{name}"
    if run.world.is_main:
        root.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)
    if run.sharded:  # every rank writes its slices into the folder rank 0 made
        if run.world.is_main:
            (tmp / SHARDS).mkdir(parents=True)
        run.world.barrier()
        write_shards(_sharded_tensors(run, state), tmp / SHARDS)
    if not run.world.is_main:
        run.world.barrier()
        return None
    try:
        tmp.mkdir(exist_ok=run.sharded)
        if not run.sharded:
            save_file({k: v.detach().contiguous().cpu() for k, v in run.model.state_dict().items()},
                      str(tmp / "model.safetensors"), metadata={"format": "pt"})
        (tmp / "model_config.json").write_text(json.dumps(run.model.config.to_dict(), indent=1))
        _save_tokenizer(run, tmp)
        # Each file is hashed right after it is written (read back from the page cache, ~1.5 GB/s);
        # state.json, written last, records them: the seal of a complete checkpoint.
        checksums = {p.name: sha256_file(p) for p in sorted(tmp.iterdir()) if p.is_file()}
        checksums.update({f"{SHARDS}/{p.name}": sha256_file(p) for p in shard_files(tmp / SHARDS)})
        save_tree(state, tmp, "state", checksums=checksums)
    except OSError as e:  # a full disk: the part written goes (it frees space), the last checkpoint stays
        shutil.rmtree(tmp, ignore_errors=True)
        if is_no_space(e):
            raise no_space(root, _checkpoint_bytes(run, state), f"`tinylm train --out {run.out_dir} --resume` "
                           "continues from the last checkpoint") from e
        raise
    old = root / f".old-{name}"
    if final.exists():  # a step saved twice (the final save, a stop on a checkpoint step)
        shutil.rmtree(old, ignore_errors=True)
        final.rename(old)  # never a moment with neither: `.old-` and `.tmp-` are found by scanning
    tmp.rename(final)
    _point_latest(root, name)
    shutil.rmtree(old, ignore_errors=True)
    _prune(run, root)
    run.world.barrier()
    return final


def _sharded_tensors(run, state: dict) -> dict:
    """The tensors every rank writes its slices of (weights `model.NAME`, moments `optimizer.NAME.KEY`); the
    state keeps the moments' layout in their place, so state.json says what the shards must hold."""
    tensors = {f"model.{k}": v for k, v in run.model.state_dict().items()}
    layout: dict[str, dict] = {}
    for name, entry in state["optimizer"].items():
        for key, value in entry.items():
            tensors[f"optimizer.{name}.{key}"] = value
            layout.setdefault(name, {})[key] = [list(value.shape), str(value.dtype).removeprefix("torch.")]
    state["optimizer"] = {SHARDED_OPTIMIZER: layout}
    return tensors


def _checkpoint_bytes(run, state) -> int:
    """About what a checkpoint takes: the weights and every tensor of the state (AdamW's moments)."""
    def size(tree) -> int:
        if isinstance(tree, torch.Tensor):
            return tree.numel() * tree.element_size()
        if isinstance(tree, dict):
            return sum(size(v) for v in tree.values())
        if isinstance(tree, (list, tuple)):
            return sum(size(v) for v in tree)
        return 0
    return size(run.model.state_dict()) + size(state)


def _save_tokenizer(run, directory: Path) -> None:
    """Each checkpoint carries its tokenizer, so evaluation and export never need the store."""
    store = getattr(run, "store", None)
    if store is None:
        return
    shutil.copyfile(store.path / store.meta["tokenizer"].get("file", "tokenizer.json"), directory / "tokenizer.json")
    (directory / "tokenizer_meta.json").write_text(json.dumps(
        {"name": store.meta["tokenizer"].get("name"), "vocab_size": store.vocab_size,
         "special_ids": store.special_ids}, indent=1))


def _point_latest(root: Path, name: str) -> None:
    tmp = root / ".latest.tmp"
    tmp.write_text(name + "\n")
    os.replace(tmp, root / "latest")


def _prune(run, root: Path) -> None:
    keep = max(1, run.recipe.checkpoint.keep)
    milestones = {f"step-{step:08d}" for step in run.word_checkpoints.steps()}  # kept whatever `keep` says
    steps = sorted(p for p in root.glob("step-*") if p.is_dir())
    for old in steps[:-keep]:
        if old.name not in milestones:
            shutil.rmtree(old, ignore_errors=True)
    for stale in [*root.glob(".old-step-*"), *root.glob(".tmp-step-*")]:  # left by a crash in the writer's window
        shutil.rmtree(stale, ignore_errors=True)
    # Snapshots still referenced by the run or by a kept checkpoint stay; the rest go.
    referenced = set(run.snapshots.values())
    for ckpt in steps[-keep:]:
        try:
            referenced |= set(state_summary(ckpt).get("snapshots", {}).values())
        except UserError:  # a damaged older checkpoint: its snapshots are kept, it is reported when read
            return
    for snap in (run.out_dir / "snapshots").glob("*") if (run.out_dir / "snapshots").exists() else []:
        if snap.name not in referenced and not snap.name.startswith(".tmp"):
            shutil.rmtree(snap, ignore_errors=True)


def restore(run, ckpt: Path) -> None:
    """Put a freshly built run (same model config and weights loaded) into the checkpoint's state."""
    state = load_state(ckpt, like=_optimizer_target(run) if run.sharded else None)
    try:
        _restore(run, state)
    except (KeyError, TypeError, ValueError, IndexError, RuntimeError) as e:
        raise UserError(f"{ckpt / 'state.json'} does not hold a run state tinylm can restore "
                        f"({type(e).__name__}: {e}): {checkpoint_fix(ckpt)}") from e
    counters = state["counters"]
    kept = run.metrics.truncate_after(run.step, counters.get("metrics_lines"))
    # written before `ended` was kept: ended when its end event is among the lines kept
    run.ended = bool(counters.get("ended", any(r.get("event") == "end" for r in kept)))


def _optimizer_target(run):
    """For a sharded run: an empty moment laid out as its (sharded) parameter, so each rank reads its own slices."""
    params = dict(run.model.named_parameters())

    def like(name: str, key: str, shape: tuple, dtype: torch.dtype):
        p = params.get(name)
        if p is None or tuple(p.shape) != shape:
            return None  # a step count, or a parameter this model does not have: whole
        return torch.empty_like(p, dtype=dtype)
    return like


def _restore(run, state: dict) -> None:
    frozen = set(state["frozen"])
    for name, p in run.model.named_parameters():
        p.requires_grad_(name not in frozen)
    run.hparams, run.lr_scales = dict(state["hparams"]), dict(state["lr_scales"])
    run._rebuild_optimizer_groups()
    run.load_optimizer_state(state["optimizer"])
    c = state["counters"]
    run.step, run.tokens, run.flops = int(c["step"]), int(c["tokens"]), float(c["flops"])
    run.wall_before = float(c.get("wall_s", 0.0))  # absent in checkpoints written before it was kept
    if c["finished_early"]:  # a method ended the run: it stays ended
        run.total_steps, run.finished_early = int(c["step"]), True
    run.schedule.load_state_dict(state["schedule"])
    run.batches.load_state_dict(state["batches"])
    run.snapshots = dict(state["snapshots"])
    run.word_checkpoints.load_state_dict(state.get("word_checkpoints"))  # absent before words were counted
    saved = state["methods"]
    if [m["name"] for m in saved] != [m.name for m in run.methods]:
        raise UserError(f"the checkpoint's methods ({', '.join(m['name'] for m in saved) or 'none'}) differ from the "
                        f"recipe's ({', '.join(m.name for m in run.methods) or 'none'}): resume with the run's own recipe")
    for method, entry in zip(run.methods, saved):
        method.load_state_dict(entry["state"])
    _set_rng_state(state["rng"])
