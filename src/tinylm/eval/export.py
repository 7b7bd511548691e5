"""Export a tinylm model as a transformers model directory the ecosystem's tools read as is.

``DIR/config.json`` + ``model.safetensors`` (via ``to_hf(model).save_pretrained``) and the
tokenizer (``tokenizer.json`` + ``tokenizer_config.json`` naming its special tokens), so
``AutoModelForCausalLM`` / ``AutoModelForMaskedLM`` and ``AutoTokenizer`` load it offline, and
lm-evaluation-harness or the BabyLM pipeline can score it. The directory is assembled under a
temporary name and renamed, then loaded back and its logits compared with ours.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from tinylm.errors import UserError

ROLES = ("bos", "eos", "pad", "unk", "cls", "sep", "mask")
PROBE = "The cat sat on the mat, and then it ran away because a dog barked."


def export_hf(loaded, out_dir, head: str | None = None, force: bool = False, verify: bool = True) -> dict:
    """Write ``loaded`` (a ``LoadedModel``) to ``out_dir``; returns what was written."""
    from tinylm.eval.hf_import import quiet_transformers

    with quiet_transformers() as tf:
        return _export(tf, loaded, out_dir, head, force, verify)


def _export(tf, loaded, out_dir, head, force, verify) -> dict:
    from tinylm.eval.hf_import import special_ids_for
    from tinylm.models.hf import to_hf

    out = Path(out_dir).expanduser()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        if not force:
            raise UserError(f"{out} already exists and is not empty: choose another --out, or pass --force to replace it")
    model = loaded.model.float().eval()
    cfg = model.config
    hf = to_hf(model, head)
    specials = special_ids_for(loaded)
    tok = loaded.tokenizer
    for role in ("bos", "eos"):
        if role in specials:
            setattr(hf.config, f"{role}_token_id", int(specials[role]))
    tmp = out.with_name(f".{out.name}.tmp-export")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        hf.save_pretrained(str(tmp), safe_serialization=True)
        names = {f"{role}_token": tok.id_to_token(int(specials[role])) for role in ROLES if role in specials}
        hf_tok = tf.PreTrainedTokenizerFast(tokenizer_file=str(loaded.tokenizer_path),
                                            model_max_length=int(cfg.max_seq_len), **names)
        hf_tok.save_pretrained(str(tmp))
        provenance = {"exported_by": "tinylm", "source": str(loaded.checkpoint), "hf_class": type(hf).__name__,
                      "tokenizer": loaded.tokenizer_name, "special_tokens": names, "tinylm_config": cfg.to_dict()}
        (tmp / "tinylm_export.json").write_text(json.dumps(provenance, indent=1))
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    result = {"out": str(out), "hf_class": type(hf).__name__, "files": sorted(p.name for p in out.iterdir()),
              "special_tokens": names}
    if verify:
        result["max_abs_logit_diff"] = verify_export(model, out, head)
    return result


def verify_export(model, out_dir, head: str | None = None) -> float:
    """Load the export back through the Auto classes and compare logits on a probe sentence."""
    import torch

    from tinylm.eval.hf_import import transformers_module

    tf = transformers_module()
    auto_tok = tf.AutoTokenizer.from_pretrained(str(out_dir), local_files_only=True)
    if model.config.kind == "encoder":
        cls = tf.AutoModelForSequenceClassification if head == "classification" else tf.AutoModelForMaskedLM
    else:
        cls = tf.AutoModelForCausalLM
    hf = cls.from_pretrained(str(out_dir), local_files_only=True).float().eval()
    ids = auto_tok(PROBE, return_tensors="pt")["input_ids"][:, : model.config.max_seq_len]
    ids = ids.clamp_max(model.config.vocab_size - 1)
    with torch.inference_mode():
        theirs = hf(input_ids=ids).logits
        ours = model.classify(ids) if head == "classification" else model(ids)
    diff = float((theirs.float() - ours.float()).abs().max())
    if diff > 1e-4:
        raise RuntimeError(f"exported model disagrees with ours: max |logit diff| {diff:.2e} (a bug in the export)")
    return diff
