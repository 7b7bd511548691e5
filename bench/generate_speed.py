"""Decoding speed: `tinylm generate`'s loop (key/value cache) against transformers' `generate`.

The same weights in both (the tinylm model, and `to_hf` of it: what `tinylm export` writes), the same
prompt ids, the same number of new tokens, greedy, float32, one process. Each round times every
contender once, in turn, so machine noise hits them alike; the figure is the median round's new
tokens per second (prefill included, as a user waits for it). `tinylm_no_cache` is the same loop
recomputing the whole context every token (what `tinylm generate` did before the cache), for scale.
The greedy tokens of all contenders are compared: `same_tokens` says they agreed.

Random init (no training, no tokenizer file): a word-level tokenizer of the model's vocabulary size
stands in, so the loop still encodes the prompt and decodes (streams) the text as it goes.

    python bench/generate_speed.py                      # tiny (L2-4-32x2) and babyllama2-16m
    python bench/generate_speed.py --configs babyllama2-16m --new-tokens 256 --rounds 7
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import torch
from torch import nn

CONFIGS = {"tiny": ("L2-4-32x2", 4096), "babyllama2-16m": ("babyllama2-16m", None)}  # name -> (spec, vocab)


def word_tokenizer(vocab_size: int):
    """A `tokenizers.Tokenizer` whose token i is the word `wi`: encode and decode without any file."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    tok = Tokenizer(models.WordLevel({f"w{i}": i for i in range(vocab_size)}, unk_token="w0"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.decoder = decoders.WordPiece(prefix="##")  # joins words with spaces
    return tok


class NoCache(nn.Module):
    """The model without `new_cache`: generation recomputes the whole context for every token."""

    def __init__(self, model):
        super().__init__()
        self.inner, self.config = model, model.config

    def forward(self, input_ids):
        return self.inner(input_ids)


def contenders(spec: str, vocab: int | None, prompt_len: int, new_tokens: int):
    from tinylm.eval.generation import generate
    from tinylm.models import build_model, resolve_model_config
    from tinylm.models.hf import to_hf

    overrides = {"max_seq_len": max(512, prompt_len + new_tokens)}
    if vocab:
        overrides["vocab_size"] = vocab
    torch.manual_seed(0)
    model = build_model(resolve_model_config(spec, **overrides)).eval()
    cfg = model.config
    tok = word_tokenizer(cfg.vocab_size)
    ids = torch.randint(1, cfg.vocab_size, (prompt_len,), generator=torch.Generator().manual_seed(1)).tolist()
    prompt = " ".join(f"w{i}" for i in ids)
    hf = to_hf(model).eval()
    hf.generation_config.eos_token_id = None  # never stop early: every contender writes new_tokens
    x = torch.tensor([ids])

    def ours(m):
        def run():
            [c] = generate(m, tok, [prompt], max_new_tokens=new_tokens, temperature=0, special_ids={})
            return c.ids
        return run

    def theirs():
        with torch.no_grad():
            out = hf.generate(x, attention_mask=torch.ones_like(x), do_sample=False, max_new_tokens=new_tokens,
                              min_new_tokens=new_tokens, pad_token_id=0)
        return out[0, prompt_len:].tolist()

    from tinylm.models import count_parameters
    return {"tinylm": ours(model), "transformers": theirs, "tinylm_no_cache": ours(NoCache(model))}, \
        count_parameters(model)["total"]


def bench(name: str, args) -> dict:
    spec, vocab = CONFIGS[name]
    runs, n_params = contenders(spec, vocab, args.prompt_tokens, args.new_tokens)
    if args.skip_no_cache:
        runs.pop("tinylm_no_cache")
    tokens = {k: run() for k, run in runs.items()}  # warm-up, and the tokens to compare
    times: dict[str, list[float]] = {k: [] for k in runs}
    for _ in range(args.rounds):
        for k, run in runs.items():
            t = time.perf_counter()
            run()
            times[k].append(time.perf_counter() - t)
    rates = {k: args.new_tokens / statistics.median(v) for k, v in times.items()}
    row = {"config": name, "spec": spec, "parameters": n_params, "prompt_tokens": args.prompt_tokens,
           "new_tokens": args.new_tokens, "rounds": args.rounds, "threads": torch.get_num_threads(),
           **{f"{k}_tokens_per_s": round(r, 1) for k, r in rates.items()},
           "ratio": round(rates["tinylm"] / rates["transformers"], 3),
           "same_tokens": len({tuple(t) for t in tokens.values()}) == 1}
    if "tinylm_no_cache" in rates:
        row["cache_speedup"] = round(rates["tinylm"] / rates["tinylm_no_cache"], 2)
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    p.add_argument("--prompt-tokens", type=int, default=16)
    p.add_argument("--new-tokens", type=int, default=128)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--skip-no-cache", action="store_true", help="leave out the recomputing loop (slow at length)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    import transformers

    results = [bench(name, args) for name in args.configs]
    print(json.dumps({"machine": platform.processor() or platform.machine(), "cpu": _cpu_name(),
                      "torch": torch.__version__, "transformers": transformers.__version__, "results": results},
                     indent=1))


def _cpu_name() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


if __name__ == "__main__":
    main()
