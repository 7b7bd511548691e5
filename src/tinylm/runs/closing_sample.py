"""A few words the finished model writes, kept in `summary.json`: the loss says how well, this says what.

At the end of a run of a decoder, ``summary.json`` gets ``sample``: ``SAMPLE_TOKENS`` tokens the model
writes from the start of a document (its end-of-text token, as the token stores put before every
document; "The" for a tokenizer without one), seeded, with the demo's settings (temperature 0.8,
top-k 40), in the window the run trained on. The same text again: ``tinylm generate RUN --prompt ""
--max-new-tokens 24 --seed 0``. It reads the trained model in memory and the final checkpoint's
tokenizer (nothing is reloaded), with a random generator of its own, so the run's own random state and
results are untouched. Cost: the tokenizer's load and 24 cached decoding steps (tens of milliseconds on
the tiny recipes; bench/generate_speed.py has the per-token figures).
"""

from __future__ import annotations

from pathlib import Path

SAMPLE_TOKENS = 24
SETTINGS = {"temperature": 0.8, "top_k": 40, "seed": 0}


def closing_sample(run, out_dir: Path, model=None) -> dict | None:
    """``{"prompt", "text", "tokens", **SETTINGS}`` for a decoder run with a checkpoint; None otherwise.
    `model`: the run's model whole (a sharded one gathered: `tinylm.train.fsdp.gathered`); default `run.model`."""
    model = run.model if model is None else model
    from tinylm.eval.generation import generate
    from tinylm.loading import LoadedModel
    from tinylm.rundir.checkpoints import latest_checkpoint

    ckpt = latest_checkpoint(Path(out_dir))
    if run.model.config.kind != "decoder" or ckpt is None or not (ckpt / "tokenizer.json").is_file():
        return None
    from tinylm.data.tokenizer import special_ids as tokenizer_special_ids
    from tinylm.eval.hf_import import special_ids_for
    from tinylm.rundir.files import read_json

    meta_path = ckpt / "tokenizer_meta.json"
    meta = read_json(meta_path, "re-save the checkpoint") if meta_path.is_file() else {}
    loaded = LoadedModel(model, ckpt, Path(out_dir), ckpt / "tokenizer.json", dict(meta.get("special_ids", {})),
                         meta.get("name"))
    tokenizer = _tokenizer(loaded)
    specials = special_ids_for(loaded) if loaded.special_ids else tokenizer_special_ids(tokenizer)
    prompt = "" if "eos" in specials else "The"
    [out] = generate(model, tokenizer, [prompt], max_new_tokens=SAMPLE_TOKENS, special_ids=specials,
                     window=run.recipe.data.seq_len, **SETTINGS)
    return {"prompt": prompt, "text": out.text, "tokens": len(out.ids), **SETTINGS}


_TOKENIZERS: dict[str, object] = {}  # by the file's hash: a sweep or a seed study loads its tokenizer once


def _tokenizer(loaded):
    """The checkpoint's tokenizer (a GPT-2 tokenizer.json takes ~0.3 s to parse; its hash, ~5 ms)."""
    import hashlib

    key = hashlib.sha256(loaded.tokenizer_path.read_bytes()).hexdigest()
    if key not in _TOKENIZERS:
        if len(_TOKENIZERS) >= 4:
            _TOKENIZERS.clear()
        _TOKENIZERS[key] = loaded.tokenizer
    return _TOKENIZERS[key]
