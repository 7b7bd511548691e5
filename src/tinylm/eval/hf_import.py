"""Load any model evaluation can take: a tinylm run, one of its checkpoints, or a transformers
model directory (``config.json`` + weights + tokenizer files), the last converted to a tinylm model
with ``tinylm.models.hf.from_hf`` so it can be evaluated, used as a teacher or trained further.

``load_any(path)`` returns the same ``LoadedModel`` as ``tinylm.loading.load_model``.
Nothing here downloads: transformers is always called with ``local_files_only=True``.
"""

from __future__ import annotations

import contextlib
import hashlib
from pathlib import Path

from tinylm.errors import UserError
from tinylm.optional import require

_ROLES = ("bos", "eos", "pad", "unk", "cls", "sep", "mask")


def transformers_module():
    return require("transformers", "reading or writing a transformers model directory")


@contextlib.contextmanager
def quiet_transformers():
    """No "Loading weights" bars or advisory warnings from transformers inside a CLI command."""
    tf = transformers_module()
    logging_ = tf.utils.logging
    bars = logging_.is_progress_bar_enabled()
    verbosity = logging_.get_verbosity()
    logging_.disable_progress_bar()
    logging_.set_verbosity_error()
    try:
        yield tf
    finally:
        logging_.set_verbosity(verbosity)
        if bars:
            logging_.enable_progress_bar()


def is_hf_dir(path) -> bool:
    path = Path(path)
    return (path / "config.json").is_file() and not (path / "model_config.json").is_file()


def load_any(path, device: str = "cpu"):
    """A ``LoadedModel`` for a run directory, a checkpoint directory or a transformers directory."""
    from tinylm.loading import load_model

    path = Path(path).expanduser()
    if is_hf_dir(path):
        return load_hf_dir(path, device)
    return load_model(path, device)


def _auto_class(tf, model_type: str):
    if model_type == "bert":
        return tf.AutoModelForMaskedLM
    return tf.AutoModelForCausalLM


# Weights formats that are pickles (or would need their framework to read): never opened.
PICKLED_WEIGHTS = ("pytorch_model.bin", "pytorch_model.bin.index.json", "training_args.bin", "model.pt", "model.pth",
                   "model.ckpt", "tf_model.h5", "flax_model.msgpack")
SAFE_WEIGHTS = ("model.safetensors", "model.safetensors.index.json")


def check_safetensors_only(path: Path) -> None:
    """Refuse, before anything is loaded, a transformers directory whose weights are not safetensors:
    `pytorch_model.bin` is a pickle, and unpickling runs whatever code the file carries."""
    path = Path(path)
    if any((path / name).is_file() for name in SAFE_WEIGHTS):
        return
    pickled = [name for name in PICKLED_WEIGHTS if (path / name).is_file()] or sorted(
        p.name for p in path.glob("*.bin"))[:1]
    if pickled:
        raise UserError(f"{path} has no model.safetensors, only {pickled[0]} (a pickle: tinylm never unpickles): "
                        "convert to safetensors with transformers first (AutoModel.from_pretrained(DIR)"
                        ".save_pretrained(DIR, safe_serialization=True))")
    raise UserError(f"{path} has a config.json but no weights (model.safetensors): re-save the model with "
                    "save_pretrained(DIR)")


def load_hf_dir(path: Path, device: str = "cpu"):
    """Convert a transformers model directory into a tinylm ``LoadedModel``."""
    check_safetensors_only(path)
    with quiet_transformers() as tf:
        return _load_hf_dir(tf, Path(path), device)


def _load_hf_dir(tf, path: Path, device):
    from safetensors import SafetensorError

    from tinylm.models.hf import from_hf
    from tinylm.loading import LoadedModel

    from tinylm.rundir.files import read_json

    cfg = read_json(path / "config.json", "it is not a readable transformers config: re-save the model with "
                    "save_pretrained(DIR)")
    check_safetensors_only(path)
    tokenizer_path, specials = tokenizer_file(tf, path)
    try:
        hf_model = _auto_class(tf, cfg.get("model_type", "")).from_pretrained(
            str(path), local_files_only=True, use_safetensors=True)  # never a fallback to pytorch_model.bin
    except (OSError, ValueError, KeyError, SafetensorError) as e:
        raise UserError(f"transformers cannot load {path} ({str(e).splitlines()[0]}); tinylm imports llama, gemma, "
                        "gpt2, gpt_neox and bert models") from e
    model = from_hf(hf_model).float().to(device).eval()
    return LoadedModel(model, path, None, tokenizer_path, specials, cfg.get("_name_or_path") or path.name)


def tokenizer_file(tf, path: Path) -> tuple[Path, dict]:
    """The directory's tokenizer.json (written to the cache from a slow tokenizer's files if needed)
    and the roles of its special tokens, as transformers' tokenizer declares them."""
    try:
        auto = tf.AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    except (OSError, ValueError, TypeError) as e:
        raise UserError(f"{path} has no tokenizer transformers can load ({str(e).splitlines()[0]}); save the "
                        "tokenizer there with tokenizer.save_pretrained(DIR)") from e
    specials = {}
    for role in _ROLES:
        token_id = getattr(auto, f"{role}_token_id", None)
        if token_id is not None:
            specials[role] = int(token_id)
    file = path / "tokenizer.json"
    if not file.is_file():
        backend = getattr(auto, "backend_tokenizer", None) or getattr(auto, "_tokenizer", None)
        if backend is None:
            raise UserError(f"{path} has no tokenizer.json and its tokenizer has no fast version; save a fast "
                            "tokenizer there (AutoTokenizer.from_pretrained(..., use_fast=True).save_pretrained)")
        from tinylm.cache import cache_dir

        text = backend.to_str()
        file = cache_dir() / "hf-tokenizers" / hashlib.sha256(text.encode()).hexdigest()[:16] / "tokenizer.json"
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text(text)
    return file, specials


def special_ids_for(loaded) -> dict:
    """The roles of the special tokens of a loaded model's tokenizer (from its metadata, or derived)."""
    if loaded.special_ids:
        return {k: int(v) for k, v in loaded.special_ids.items()}
    from tinylm.data.tokenizer import special_ids

    return special_ids(loaded.tokenizer)
