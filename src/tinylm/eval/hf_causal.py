"""Any transformers causal LM, run by transformers itself, behind the interface generation reads.

``tinylm generate HF_DIR`` samples with the same code as for a tinylm run (seeds, top-k/top-p,
streaming, the window), but the model is transformers' own (``AutoModelForCausalLM``), with its own
key/value cache: so it works for architectures tinylm cannot import (Qwen, OPT, Mistral, ...), and
for tinylm's exports it is the model the ecosystem will run. The wrapper offers what generation
uses: ``config.kind``/``flavour``/``max_seq_len``, ``new_cache()`` and ``model(ids, cache=...)``.
Loading is local only (``local_files_only``), from safetensors only (nothing is unpickled).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from tinylm.errors import UserError

# model types whose checkpoints are masked-language encoders, not causal LMs
ENCODER_TYPES = ("bert", "roberta", "distilbert", "albert", "electra", "xlm-roberta", "camembert", "deberta",
                 "deberta-v2", "modernbert", "mpnet")
UNLIMITED = 1 << 30  # a model that declares no position limit (the window is then the prompt's own)


@dataclass(frozen=True)
class CausalConfig:
    flavour: str  # transformers' model_type
    max_seq_len: int
    kind: str = "decoder"


class HFCache:
    """transformers' past key values, and how many positions they hold."""

    def __init__(self):
        self.past = None
        self.length = 0


class HFCausalLM(nn.Module):
    """``forward(input_ids, cache=None) -> logits`` (B, T, vocab) of a transformers causal LM."""

    def __init__(self, hf_model):
        super().__init__()
        self.hf = hf_model
        cfg = hf_model.config
        limit = getattr(cfg, "max_position_embeddings", None) or getattr(cfg, "n_positions", None) or UNLIMITED
        self.config = CausalConfig(flavour=str(cfg.model_type), max_seq_len=int(limit))
        # transformers 5 renamed `past_key_values` (argument and output) to `cache`
        self.cache_name = "cache" if "cache" in inspect.signature(hf_model.forward).parameters else "past_key_values"

    def new_cache(self) -> HFCache:
        return HFCache()

    def forward(self, input_ids: torch.Tensor, cache: HFCache | None = None) -> torch.Tensor:
        if cache is None:
            return self.hf(input_ids=input_ids, use_cache=False).logits
        out = self.hf(input_ids=input_ids, use_cache=True, **{self.cache_name: cache.past})
        cache.past = out[self.cache_name]
        cache.length += input_ids.shape[1]
        return out.logits


def is_encoder_dir(path) -> bool:
    """Whether a transformers directory holds a masked-language encoder (by its config.json)."""
    from tinylm.rundir.files import read_json

    cfg = read_json(Path(path) / "config.json", "it is not a readable transformers config: re-save the model "
                    "with save_pretrained(DIR)")
    architectures = cfg.get("architectures") or []
    return cfg.get("model_type") in ENCODER_TYPES or any("MaskedLM" in a for a in architectures)


def load_hf_causal(path, device: str = "cpu"):
    """A ``LoadedModel`` whose model is the directory's transformers causal LM (float32, eval mode)."""
    from tinylm.eval.hf_import import check_safetensors_only, quiet_transformers, tokenizer_file
    from tinylm.loading import LoadedModel

    from safetensors import SafetensorError

    path = Path(path).expanduser()
    check_safetensors_only(path)
    with quiet_transformers() as tf:
        tokenizer_path, specials = tokenizer_file(tf, path)
        try:
            hf_model = tf.AutoModelForCausalLM.from_pretrained(str(path), local_files_only=True, use_safetensors=True)
        except (OSError, ValueError, KeyError, ImportError, SafetensorError) as e:
            raise UserError(f"transformers cannot load {path} as a causal language model "
                            f"({str(e).splitlines()[0]}); give a directory of a decoder saved with "
                            "save_pretrained(DIR)") from e
    model = HFCausalLM(hf_model.float().to(device).eval())
    return LoadedModel(model, path, None, tokenizer_path, specials, path.name)
