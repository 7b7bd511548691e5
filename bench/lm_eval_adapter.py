"""lm-evaluation-harness log-likelihood requests: tinylm's adapter (``tinylm eval --lm-eval``) against
lm-eval's own ``HFLM`` on the same model exported to transformers, same requests, same machine.

The requests are lm-eval 0.4's BLiMP ones (empty context: the start token; continuation " " + sentence)
for every sentence of the BLiMP files given (default: the test fixture's 5 paradigms, 400 sentences).
The model is a run or checkpoint (``--model``), or by default a randomly initialised ``--spec`` Llama
with the GPT-2 tokenizer (speed does not depend on the weights). Reports requests per second of each,
their ratio and the largest |difference| of the log-likelihoods. Prints JSON.

    python bench/lm_eval_adapter.py [--model RUN] [--spec L4-4-128x4] [--blimp DIR] [--batch-size 32]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def random_checkpoint(root: Path, spec: str) -> Path:
    """A checkpoint directory as `tinylm train` writes one, with random weights."""
    from safetensors.torch import save_file

    from tinylm.data.tokenizer import load_tokenizer, special_ids, vocab_size
    from tinylm.models import build_model, resolve_model_config

    tok = load_tokenizer("gpt2")
    cfg = resolve_model_config(spec, flavour="llama", vocab_size=vocab_size(tok), max_seq_len=512)
    torch.manual_seed(0)
    model = build_model(cfg)
    ckpt = root / "run" / "checkpoints" / "step-00000001"
    ckpt.mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(ckpt / "model.safetensors"))
    (ckpt / "model_config.json").write_text(json.dumps(cfg.to_dict()))
    tok.save(str(ckpt / "tokenizer.json"))
    (ckpt / "tokenizer_meta.json").write_text(json.dumps({"name": "gpt2", "vocab_size": cfg.vocab_size,
                                                          "special_ids": special_ids(tok)}))
    return ckpt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", help="a run, checkpoint or transformers directory (default: random --spec)")
    ap.add_argument("--spec", default="L4-4-128x4", help="model spec of the random default model")
    ap.add_argument("--blimp", default=str(REPO / "tests" / "fixtures" / "blimp"))
    ap.add_argument("--batch-size", type=int, default=32, help="HFLM's batch size")
    args = ap.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", torch.get_num_threads())))

    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM

    from tinylm.eval.export import export_hf
    from tinylm.eval.hf_import import load_any, special_ids_for
    from tinylm.eval.lm_eval_model import TinylmLM
    from tinylm.eval.minimal_pairs import read_minimal_pairs
    from tinylm.eval.scoring import Scorer

    tmp = Path(tempfile.mkdtemp(prefix="bench-lm-eval-"))
    try:
        loaded = load_any(args.model or random_checkpoint(tmp, args.spec))
        export_hf(loaded, tmp / "hf", verify=False)
        pairs = read_minimal_pairs(args.blimp)
        sentences = [p.good for p in pairs] + [p.bad for p in pairs]
        requests = [Instance("loglikelihood", {}, ("", " " + s), i) for i, s in enumerate(sentences)]

        ours_lm = TinylmLM(Scorer.for_model(loaded.model.float().eval()), loaded.tokenizer, special_ids_for(loaded))
        started = time.perf_counter()
        ours = np.array([ll for ll, _ in ours_lm.loglikelihood(requests, disable_tqdm=True)])
        ours_s = time.perf_counter() - started

        hflm = HFLM(pretrained=str(tmp / "hf"), device="cpu", batch_size=args.batch_size, dtype="float32")
        started = time.perf_counter()
        theirs = np.array([ll for ll, _ in hflm.loglikelihood(requests, disable_tqdm=True)])
        theirs_s = time.perf_counter() - started
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    cfg = loaded.model.config
    print(json.dumps({
        "requests": len(requests), "model": args.model or f"random {args.spec} (llama, gpt2 tokenizer)",
        "parameters": sum(p.numel() for p in loaded.model.parameters()), "flavour": cfg.flavour,
        "tinylm_adapter_requests_per_s": round(len(requests) / ours_s, 1),
        "hflm_requests_per_s": round(len(requests) / theirs_s, 1), "ratio": round(theirs_s / ours_s, 3),
        "max_abs_loglikelihood_diff": float(np.abs(ours - theirs).max()), "hflm_batch_size": args.batch_size,
        "threads": torch.get_num_threads(), "load_avg": [round(x, 2) for x in os.getloadavg()],
    }, indent=1))


if __name__ == "__main__":
    main()
