"""`tinylm generate RUN|CHECKPOINT|HF_DIR --prompt TEXT [--max-new-tokens N] [--temperature T] [--top-k K]
[--top-p P] [--seed S] [--num-samples N]`, or `tinylm generate ENCODER --fill "the [MASK] sat"`

Continues a prompt with a trained decoder: a run directory (its latest checkpoint), a checkpoint
directory, or a transformers model directory (any causal LM, run by transformers itself). The text
prints as it is drawn. Sampling is seeded, so the same command gives the same text again; each of
--num-samples continuations has its own seed; --temperature 0 (or --top-k 1) always takes the
likeliest token. Stops at the tokenizer's end-of-text token or after --max-new-tokens new tokens.
The model sees the latest tokens only: as many as the run trained on (data.seq_len), or its
max_seq_len when it is not in a run. An encoder (bert) fills in its mask token instead: --fill
prints the --top-k likeliest tokens for each [MASK] with their probabilities.
"""

from __future__ import annotations

import sys
from pathlib import Path

from tinylm.cli.numbers import SEED, whole

FILL_TOP_K = 5  # fillers shown per mask when --top-k is not given


def register(sub) -> None:
    p = sub.add_parser("generate", help="continue a prompt with a trained decoder (seeded sampling, streamed)",
                       description=__doc__)
    p.add_argument("model", metavar="RUN|CHECKPOINT|HF_DIR",
                   help="a run directory, a checkpoint directory, or a transformers model directory")
    p.add_argument("--prompt", action="append", metavar="TEXT",
                   help="the text to continue (repeat for several prompts)")
    p.add_argument("--fill", action="append", metavar="TEXT",
                   help="an encoder only: a text with [MASK] in it, whose fillers to list (repeatable)")
    p.add_argument("--max-new-tokens", "--tokens", dest="max_new_tokens", type=whole(1), default=100, metavar="N",
                   help="new tokens at most (default 100)")
    p.add_argument("--seed", type=SEED, default=0, help="sampling seed (default 0)")
    p.add_argument("--temperature", type=float, default=0.8,
                   help="below 1 is more conservative, above 1 more adventurous; 0 is greedy (default 0.8)")
    p.add_argument("--top-k", type=int, default=None, metavar="K",
                   help="sample among the K likeliest tokens only (default 40; 0 for all); with --fill, the "
                        f"fillers to show (default {FILL_TOP_K})")
    p.add_argument("--top-p", type=float, default=None, metavar="P",
                   help="sample among the likeliest tokens whose probabilities add up to P (nucleus; default 1: all)")
    p.add_argument("--num-samples", type=int, default=1, metavar="N",
                   help="continuations per prompt, each with its own seed (default 1)")
    p.add_argument("--device", default="cpu", help="cpu (default), auto, cuda, cuda:N or mps")
    p.set_defaults(func=run)


def run(args) -> int:
    from tinylm.errors import UserError
    from tinylm.eval.generation import check_sampling

    if bool(args.prompt) == bool(args.fill):
        raise UserError("give --prompt TEXT to continue (a decoder), or --fill \"... [MASK] ...\" (an encoder)")
    if args.fill:
        return _fill(args)
    if args.top_k is not None and args.top_k < 0:
        raise UserError(f"--top-k {args.top_k}: give 1 or more, or 0 to sample from every token")
    top_k = 40 if args.top_k is None else (args.top_k or None)
    check_sampling(args.max_new_tokens, args.temperature, top_k, args.top_p, args.num_samples)  # before loading
    loaded = _load(args.model, args.device)
    from tinylm.eval.generation import generate
    from tinylm.eval.hf_import import special_ids_for

    generate(loaded.model, loaded.tokenizer, args.prompt, max_new_tokens=args.max_new_tokens,
             temperature=args.temperature, top_k=top_k, top_p=args.top_p, seed=args.seed,
             num_samples=args.num_samples, special_ids=special_ids_for(loaded), window=trained_window(loaded),
             sink=Terminal())
    return 0


class Terminal:  # a tinylm.eval.generation.Sink
    """Each continuation as ``prompt + new text``, a token at a time; a blank line between continuations."""

    def __init__(self, out=None):
        self.out = out or sys.stdout
        self.started = False

    def begin(self, prompt: str, sample: int) -> None:
        self.out.write(("\n" if self.started else "") + prompt)
        self.out.flush()
        self.started = True

    def write(self, piece: str) -> None:
        if piece:
            self.out.write(piece)
            self.out.flush()

    def end(self, continuation) -> None:
        self.out.write("\n")
        self.out.flush()


def _load(path, device_name: str):
    from tinylm.eval.hf_causal import is_encoder_dir, load_hf_causal
    from tinylm.eval.hf_import import is_hf_dir, load_any
    from tinylm.train.build import pick_device
    from tinylm.train.distributed import World

    device = str(pick_device(device_name, World()))
    if is_hf_dir(path) and not is_encoder_dir(path):
        return load_hf_causal(path, device)
    return load_any(path, device=device)


def _fill(args) -> int:
    from tinylm.eval.fill_mask import fill_mask
    from tinylm.eval.hf_import import special_ids_for

    loaded = _load(args.model, args.device)
    top_k = FILL_TOP_K if args.top_k is None else args.top_k
    for i, text in enumerate(args.fill):
        if i:
            print()
        print(text)
        for n, fillers in enumerate(fill_mask(loaded.model, loaded.tokenizer, text, top_k=top_k,
                                              special_ids=special_ids_for(loaded)), start=1):
            print(f"  mask {n}: " + "  ".join(f"{f.token.strip()} {f.probability:.3f}" for f in fillers))
    return 0


def trained_window(loaded) -> int | None:
    """The window length the model's run trained on, or None outside a run: positions beyond it were
    never seen in training (rotary models run past them, but write worse text there)."""
    if loaded.run_dir is None or not (Path(loaded.run_dir) / "config.yaml").is_file():
        return None
    from tinylm.train.build import recipe_for_run

    return recipe_for_run(loaded.run_dir).data.seq_len
