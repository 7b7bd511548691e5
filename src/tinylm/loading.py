"""Models built from checkpoints: a run directory or checkpoint in, a model (and its tokenizer) out.

Evaluation, export, teachers, `init_from`, resume and surgery all start here. A checkpoint is
self-contained (weights, model config, tokenizer), so it can be moved away from its run and its
token store. This module joins two layers beneath training and evaluation: `tinylm.rundir` reads
the files (and knows nothing of models), `tinylm.models` builds the modules (and knows nothing of
files); so train, eval and runs all load a model the one way, and none of them imports another
for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from tinylm.errors import UserError
from tinylm.models import ModelConfig, build_model
from tinylm.rundir.checkpoints import (check_weights_fit, checkpoint_fix, load_checkpoint_weights, load_weights,
                                       read_model_config, resolve_checkpoint)
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


def checkpoint_model_config(ckpt: Path) -> ModelConfig:
    """The checkpoint's ModelConfig; a model_config.json tinylm cannot build is a UserError naming it."""
    data = read_model_config(ckpt)
    try:
        return ModelConfig.from_dict(data)
    except (UserError, TypeError, ValueError) as e:
        raise UserError(f"{Path(ckpt) / 'model_config.json'} is not a tinylm model config ({e}): "
                        f"{checkpoint_fix(ckpt)}") from e


def checked_weights(ckpt: Path) -> dict[str, torch.Tensor]:
    """The checkpoint's weights, checked to be those its model_config.json describes (names and shapes),
    for readers that copy tensors by name (init_from, surgery) rather than load a model."""
    with torch.device("meta"):  # names and shapes only: no memory, no init
        model = build_model(checkpoint_model_config(ckpt))
    weights = load_weights(ckpt)
    check_weights_fit(model, weights, ckpt)
    return weights


def load_model(path, device: str | torch.device = "cpu") -> LoadedModel:
    """The model of a run directory (its latest checkpoint) or a checkpoint directory, in eval mode."""
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
