"""`tinylm generate RUN_OR_CHECKPOINT --prompt TEXT [--tokens N] [--seed S] [--temperature T] [--top-k K]`

Continues a prompt with a trained decoder: a run directory (its latest checkpoint), a checkpoint
directory, or a transformers model directory. Sampling is seeded, so the same command gives the
same text again; --temperature 0 (or --top-k 1) always takes the likeliest token. Stops at the
tokenizer's end-of-text token or after --tokens new tokens. The model sees the latest tokens only:
as many as the run trained on (data.seq_len), or its max_seq_len when it is not in a run.
"""

from __future__ import annotations

from pathlib import Path

from tinylm.cli.numbers import SEED, whole


def register(sub) -> None:
    p = sub.add_parser("generate", help="continue a prompt with a trained decoder (seeded sampling)",
                       description=__doc__)
    p.add_argument("model", metavar="RUN_OR_CHECKPOINT",
                   help="a run directory, a checkpoint directory, or a transformers model directory")
    p.add_argument("--prompt", action="append", required=True, metavar="TEXT",
                   help="the text to continue (repeat for several prompts)")
    p.add_argument("--tokens", type=whole(1), default=100, metavar="N", help="new tokens at most (default 100)")
    p.add_argument("--seed", type=SEED, default=0, help="sampling seed (default 0)")
    p.add_argument("--temperature", type=float, default=0.8,
                   help="below 1 is more conservative, above 1 more adventurous; 0 is greedy (default 0.8)")
    p.add_argument("--top-k", type=int, default=40, metavar="K",
                   help="sample among the K likeliest tokens only (default 40; 0 for all)")
    p.add_argument("--device", default="cpu", help="cpu (default), auto, cuda, cuda:N or mps")
    p.set_defaults(func=run)


def run(args) -> int:
    from tinylm.errors import UserError
    from tinylm.eval.generation import check_sampling, generate
    from tinylm.eval.hf_import import load_any, special_ids_for
    from tinylm.train.build import pick_device
    from tinylm.train.distributed import World

    if args.top_k < 0:
        raise UserError(f"--top-k {args.top_k}: give 1 or more, or 0 to sample from every token")
    top_k = args.top_k or None
    check_sampling(args.tokens, args.temperature, top_k)  # before loading: a typo fails at once
    loaded = load_any(args.model, device=str(pick_device(args.device, World())))
    samples = generate(loaded.model, loaded.tokenizer, args.prompt, max_new_tokens=args.tokens,
                       temperature=args.temperature, top_k=top_k, seed=args.seed, special_ids=special_ids_for(loaded),
                       window=trained_window(loaded))
    for i, s in enumerate(samples):
        if i:
            print()
        print(s.prompt + s.text)
    return 0


def trained_window(loaded) -> int | None:
    """The window length the model's run trained on, or None outside a run: positions beyond it were
    never seen in training (rotary models run past them, but write worse text there)."""
    if loaded.run_dir is None or not (Path(loaded.run_dir) / "config.yaml").is_file():
        return None
    from tinylm.train.build import recipe_for_run

    return recipe_for_run(loaded.run_dir).data.seq_len
