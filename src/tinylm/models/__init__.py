"""Models: specs and presets -> ``ModelConfig`` -> one decoder (flavours) or one encoder.

The training loop and the Run's primitives rely only on this interface:
``build_model(config)``, ``model.config``, ``model(input_ids, attention_mask=None) -> logits``,
``model.classify(...)`` (encoder), ``model.init_parameter_(name, param)``, ``model.layers``,
``model.embed_tokens``, ``model.lm_head`` (None when tied), ``model.append_layers(n)``,
and ``count_parameters(model_or_config)``.
"""

from __future__ import annotations

import torch
from torch import nn

from tinylm.models.config import FLAVOURS, ModelConfig
from tinylm.models.counting import count_parameters
from tinylm.models.presets import list_presets, resolve_model_config
from tinylm.models.spec import parse_spec


def build_model(config: ModelConfig) -> nn.Module:
    """A freshly initialised ``Decoder`` or ``Encoder`` for ``config`` (by ``config.kind``).

    Build under ``with torch.device("meta"):`` to inspect shapes without allocating; the init is
    skipped there (call ``to_empty``, ``reset_buffers_`` and re-init before use).
    """
    from tinylm.models.decoder import Decoder
    from tinylm.models.encoder import Encoder

    if not isinstance(config, ModelConfig):
        raise TypeError(f"build_model needs a ModelConfig, got {type(config).__name__}; "
                        f"use resolve_model_config(name_or_spec) first")
    cls = Decoder if config.kind == "decoder" else Encoder
    device = torch.empty(0).device  # honours an enclosing `with torch.device(...)`
    if device.type == "meta":
        return cls(config)
    # Build on meta, then allocate once and draw our own init: nn.Linear's default init would only
    # be overwritten, and parameters are allocated directly on the target device.
    with torch.device("meta"):
        model = cls(config)
    model.to_empty(device=device)
    model.reset_buffers_()
    model._init_all_(seed=model.init_seed)
    return model


__all__ = [
    "FLAVOURS",
    "ModelConfig",
    "build_model",
    "count_parameters",
    "list_presets",
    "parse_spec",
    "resolve_model_config",
]
