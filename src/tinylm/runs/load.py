"""Load a trained model from a run directory or one of its checkpoints, with its tokenizer.

Evaluation, export, teachers and surgery all start here; a checkpoint is self-contained
(weights, model config, tokenizer), so it can be moved away from its run and its token store.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from tinylm.errors import UserError
from tinylm.models import ModelConfig, build_model
from tinylm.train.checkpoint import latest_checkpoint, load_weights, read_model_config


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
        return Tokenizer.from_file(str(self.tokenizer_path))


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
        raise UserError(f"{path} holds no checkpoint: train it first (`tinylm train ... --out {path}`) "
                        "or give a checkpoint directory")
    raise UserError(f"{path} does not exist: give a run directory or a checkpoint directory")


def load_model(path, device: str | torch.device = "cpu") -> LoadedModel:
    ckpt, run_dir = resolve_checkpoint(path)
    tokenizer = ckpt / "tokenizer.json"
    if not tokenizer.is_file():
        raise UserError(f"checkpoint {ckpt} has no tokenizer.json: copy the run's token store tokenizer.json "
                        "there, or re-save the checkpoint with this version of tinylm")
    meta_path = ckpt / "tokenizer_meta.json"
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    model = build_model(ModelConfig.from_dict(read_model_config(ckpt)))
    model.load_state_dict(load_weights(ckpt))
    model.to(device).eval()
    return LoadedModel(model, ckpt, run_dir, tokenizer, dict(meta.get("special_ids", {})), meta.get("name"))
