"""Load a trained model from a run directory or one of its checkpoints, with its tokenizer.

Evaluation, export, teachers and surgery all start here; a checkpoint is self-contained
(weights, model config, tokenizer), so it can be moved away from its run and its token store.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from tinylm.errors import UserError
from tinylm.models import build_model
from tinylm.rundir.checkpoints import (checkpoint_fix, checkpoint_model_config, holds_checkpoints, latest_checkpoint,
                                       load_checkpoint_weights)
from tinylm.rundir.files import read_json


@dataclass
class LoadedModel:
    model: nn.Module
    checkpoint: Path
    run_dir: Path | None
    tokenizer_path: Path
    special_ids: dict
    tokenizer_name: str | None

    @property
    def tokenizer(self):
        from tokenizers import Tokenizer
        try:
            return Tokenizer.from_file(str(self.tokenizer_path))
        except Exception as e:  # tokenizers raises its own Exception for a torn or foreign file
            raise UserError(f"{self.tokenizer_path} is not a readable tokenizer ({str(e).splitlines()[0][:120]}): "
                            "copy the tokenizer.json of the run's token store there") from e


def resolve_checkpoint(path) -> tuple[Path, Path | None]:
    """(checkpoint directory, run directory or None) for a run directory or a checkpoint path."""
    path = Path(path)
    if (path / "model.safetensors").is_file() and (path / "model_config.json").is_file():
        run_dir = path.parent.parent if path.parent.name == "checkpoints" else None
        return path, run_dir
    if path.is_dir():
        ckpt = latest_checkpoint(path)
        if ckpt is not None:
            return ckpt, path
        if holds_checkpoints(path):
            raise UserError(f"{path / 'checkpoints'} holds no complete checkpoint (each is missing or damaged): "
                            f"resume the run to write one (`tinylm train --out {path} --resume`), or give a "
                            "checkpoint directory")
        raise UserError(f"{path} holds no checkpoint: train it first (`tinylm train ... --out {path}`) "
                        "or give a checkpoint directory")
    raise UserError(f"{path} does not exist: give a run directory or a checkpoint directory")


def load_model(path, device: str | torch.device = "cpu") -> LoadedModel:
    ckpt, run_dir = resolve_checkpoint(path)
    tokenizer = ckpt / "tokenizer.json"
    if not tokenizer.is_file():
        raise UserError(f"checkpoint {ckpt} has no tokenizer.json: copy the run's token store tokenizer.json "
                        "there, or re-save the checkpoint with this version of tinylm")
    # The tokenizer files are not held to the checkpoint's checksums: putting another tokenizer.json
    # there is a documented move (an older checkpoint, a shared vocabulary), checked when it is read.
    meta_path = ckpt / "tokenizer_meta.json"
    meta = read_json(meta_path, checkpoint_fix(ckpt)) if meta_path.is_file() else {}
    model = build_model(checkpoint_model_config(ckpt))
    load_checkpoint_weights(model, ckpt)
    model.to(device).eval()
    return LoadedModel(model, ckpt, run_dir, tokenizer, dict(meta.get("special_ids", {})), meta.get("name"))
