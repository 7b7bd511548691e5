"""Checkpoint surgery: active forgetting for runs that tinylm does not drive.

GAFF stops an external training run every k updates, re-draws the embeddings in its checkpoint,
resets their optimizer state and resumes it. `reset_embeddings` is that edit, for

* tinylm checkpoints: the embeddings are re-drawn with the model's own init (padding row zero),
  their AdamW moments and step counts are removed from `state.*` (the rest of the optimizer is
  kept), so `tinylm train --resume` continues with exactly those parameters fresh;
* Hugging Face model directories (`config.json` + safetensors): token embeddings are re-drawn
  with normal(0, initializer_range), the padding row zeroed and a stored tied output layer kept
  equal. An HF Trainer `optimizer.pt` is a pickle and tinylm never unpickles, so it is left out
  of the copy (the Trainer then resumes with a fresh optimizer and LR scheduler) — with a warning.

The new checkpoint is assembled in a temporary directory beside `out` and renamed into place:
a crash never leaves half a checkpoint. `surgery.json` in it records what was done and the seed.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from tinylm.errors import UserError
from tinylm.methods.embedding_params import select_embedding_params
from tinylm.rundir.checkpoints import CHECKPOINTS

HF_ROLES = {
    "embeddings": r"(^|\.)(embed_tokens|wte|embed_in|word_embeddings)\.weight$",
    "output": r"^(lm_head|embed_out|cls\.predictions\.decoder)\.weight$",
    "positions": r"(^|\.)(wpe|embed_positions|position_embeddings)\.weight$",
}
PICKLED_OPTIMIZER = re.compile(r"^optimizer(\.pt|\.bin|_\d+)?$")  # HF Trainer / accelerate / FSDP shards


@dataclass
class SurgeryReport:
    kind: str                        # "tinylm" or "huggingface"
    source: Path
    out: Path
    seed: int
    params: list[str]                # parameters re-drawn
    optimizer_reset: list[str] = field(default_factory=list)  # their optimizer state, removed
    warnings: list[str] = field(default_factory=list)


def reset_embeddings(source, out, seed: int | None = None, params=("embeddings",), make_latest: bool = False
                     ) -> SurgeryReport:
    """Write `out`: a copy of the checkpoint at `source` with the embeddings re-drawn."""
    source, out = Path(source), Path(out)
    if out.exists():
        raise UserError(f"{out} already exists: choose another --out (surgery never overwrites a checkpoint)")
    if make_latest:
        _check_latest(out)
    seed = secrets.randbits(62) if seed is None else int(seed)
    tmp = out.with_name(f".tmp-{out.name}")
    if (source / "config.json").is_file() and not (source / "model_config.json").is_file():
        work = _huggingface
    else:
        work = _tinylm
    out.parent.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        report = work(source, tmp, seed, list(params))
        report.out = out
        (tmp / "surgery.json").write_text(json.dumps(
            {"operation": "reset-embeddings", "source": str(report.source), "seed": seed, "params": report.params,
             "optimizer_state_removed": report.optimizer_reset, "warnings": report.warnings}, indent=1) + "\n")
        tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if make_latest:
        _point_latest(out)
    return report


# -- tinylm checkpoints ------------------------------------------------------------------------------
def _tinylm(source: Path, tmp: Path, seed: int, params: list[str]) -> SurgeryReport:
    from tinylm.models import build_model
    from tinylm.loading import checked_weights, checkpoint_model_config
    from tinylm.rundir.checkpoints import checkpoint_fix, load_state, resolve_checkpoint
    from tinylm.rundir.serialize import save_tree

    ckpt, _ = resolve_checkpoint(source)
    with torch.device("meta"):  # modules and names only; no memory, no init
        model = build_model(checkpoint_model_config(ckpt))
    names = select_embedding_params([n for n, _ in model.named_parameters()], params,
                                    tied=model.lm_head is None, who="surgery")
    weights = checked_weights(ckpt)  # checksum and shapes checked: a torn or foreign file is one line
    for name in names:
        fresh = torch.empty(tuple(weights[name].shape), dtype=torch.float32)
        model.init_parameter_(name, fresh, seed=seed)  # the model's own init; padding row zero
        weights[name] = fresh.to(weights[name].dtype)
    report = SurgeryReport("tinylm", ckpt, tmp, seed, names)
    for entry in ckpt.iterdir():
        # a sharded checkpoint's shards/ too: the result is a whole one (model.safetensors, moments in state)
        if entry.name not in ("model.safetensors", "state.json", "state.safetensors", "surgery.json", "shards"):
            _copy(entry, tmp / entry.name)
    save_file(weights, str(tmp / "model.safetensors"), metadata={"format": "pt"})
    if (ckpt / "state.json").is_file():
        state = load_state(ckpt)  # a sharded checkpoint's moments whole
        if not isinstance(state.get("optimizer"), dict):
            raise UserError(f"{ckpt / 'state.json'} holds no optimizer state: {checkpoint_fix(ckpt)}")
        report.optimizer_reset = [n for n in names if state["optimizer"].pop(n, None) is not None]
        from tinylm.rundir.files import sha256_file

        # sealed as training seals a checkpoint: state.json, written last, holds each file's checksum
        save_tree(state, tmp, "state", checksums={p.name: sha256_file(p) for p in sorted(tmp.iterdir()) if p.is_file()})
    else:
        report.warnings.append(f"{ckpt} has no optimizer state (state.json): only the weights were edited")
    return report


def _check_latest(out: Path) -> None:
    root = out.parent
    if root.name != CHECKPOINTS or not (root.parent / "config.yaml").is_file():
        raise UserError(f"--latest needs --out inside a run's {CHECKPOINTS}/ folder (e.g. RUN/{CHECKPOINTS}/"
                        f"step-00001000-reset); {out} is not")


def _point_latest(out: Path) -> None:
    """Make `out` the checkpoint `tinylm train --resume` continues from (atomically)."""
    root = out.parent
    pointer = root / ".latest.tmp"
    pointer.write_text(out.name + "\n")
    os.replace(pointer, root / "latest")


# -- Hugging Face model directories -------------------------------------------------------------------
def _huggingface(source: Path, tmp: Path, seed: int, params: list[str]) -> SurgeryReport:
    from tinylm.eval.hf_import import check_safetensors_only
    from tinylm.rundir.files import read_json

    check_safetensors_only(source)  # a pytorch_model.bin is a pickle: refused before anything is read
    config = read_json(source / "config.json", "it is not a readable transformers config: re-save the model with "
                       "save_pretrained(DIR)")
    index = source / "model.safetensors.index.json"
    if index.is_file():
        where = dict(json.loads(index.read_text())["weight_map"])
    elif (source / "model.safetensors").is_file():
        with safe_open(str(source / "model.safetensors"), "pt") as f:
            where = {k: "model.safetensors" for k in f.keys()}
    else:
        raise UserError(f"{source} has config.json but no model.safetensors: re-save the model with "
                        "`save_pretrained(dir, safe_serialization=True)` (tinylm never unpickles .bin weights)")
    tied = bool(config.get("tie_word_embeddings", True))  # HF's default, omitted from config.json when true
    names = _hf_select(list(where), params, tied)
    std = float(config.get("initializer_range", 0.02))
    pad = config.get("pad_token_id")
    report = SurgeryReport("huggingface", source, tmp, seed, names)
    fresh: dict[str, torch.Tensor] = {}
    for name in names:
        with safe_open(str(source / where[name]), "pt") as f:
            shape = tuple(f.get_slice(name).get_shape())
        gen = torch.Generator().manual_seed((seed * 1_000_003 + zlib.crc32(name.encode())) % (2**63 - 1))
        value = torch.empty(shape, dtype=torch.float32).normal_(0.0, std, generator=gen)
        if re.search(HF_ROLES["embeddings"], name) and isinstance(pad, int) and 0 <= pad < shape[0]:
            value[pad].zero_()
        fresh[name] = value
    outputs = [k for k in where if re.search(HF_ROLES["output"], k) and k not in fresh]
    embeds = [n for n in names if re.search(HF_ROLES["embeddings"], n)]
    if tied and outputs and len(embeds) == 1:  # a stored tied output layer stays equal to the embeddings
        fresh[outputs[0]] = fresh[embeds[0]]
        report.params.append(outputs[0])
    touched = {where[n] for n in fresh}
    for entry in source.iterdir():
        if PICKLED_OPTIMIZER.match(entry.name):
            report.warnings.append(
                f"left out {entry.name}: it is a pickle and tinylm never unpickles, so its embedding state cannot be "
                "reset; resuming from the new checkpoint starts the whole optimizer (and the HF Trainer's LR "
                "scheduler) afresh")
        elif entry.name not in touched:
            _copy(entry, tmp / entry.name)
    for file in sorted(touched):
        with safe_open(str(source / file), "pt") as f:
            metadata = f.metadata() or {"format": "pt"}
        tensors = load_file(str(source / file))
        for name, value in fresh.items():
            if where[name] == file:
                tensors[name] = value.to(tensors[name].dtype)
        save_file(tensors, str(tmp / file), metadata=metadata)
    return report


def _hf_select(keys: list[str], params: list[str], tied: bool) -> list[str]:
    chosen: list[str] = []
    for item in params:
        if item == "output" and tied:
            item = "embeddings"  # the tied output layer is the embedding table
        if item in HF_ROLES:
            found = [k for k in keys if re.search(HF_ROLES[item], k)]
            if not found:
                raise UserError(f"surgery: found no {item} weights in this model (looked for names matching "
                                f"{HF_ROLES[item]}): name the parameter exactly with --params")
        elif item in keys:
            found = [item]
        else:
            raise UserError(f"surgery: unknown parameter {item!r}: use embeddings, output, positions or an exact "
                            "weight name from model.safetensors")
        chosen += [k for k in found if k not in chosen]
    return chosen


def _copy(src: Path, dst: Path) -> None:
    if src.is_dir():
        shutil.copytree(src, dst)
    else:
        shutil.copy2(src, dst)
