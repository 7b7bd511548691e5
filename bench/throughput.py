"""Training throughput: tinylm's training step against Hugging Face `LlamaForCausalLM` in a plain loop.

Same config (BabyLlama-2 16M by default), same batch, same precision, same AdamW; the two
alternate in one process (round-robin), so machine noise hits both alike. Prints JSON.

    python bench/throughput.py [--preset babyllama2-16m] [--batch 8] [--seq 128] [--rounds 5] [--steps 5]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import statistics
import time

import torch
import torch.nn.functional as F


def synthetic_batches(vocab: int, batch: int, seq: int, n: int = 16):
    g = torch.Generator().manual_seed(0)
    return [torch.randint(vocab, (batch, seq + 1), generator=g) for _ in range(n)]


def tinylm_stepper(preset: str, batch: int, seq: int, precision: str):
    from tinylm.models import build_model, resolve_model_config
    from tinylm.train.loop import train_step
    from tinylm.train.recipe import recipe_from_dict
    from tinylm.train.run import Run

    recipe = recipe_from_dict({"data": {"store": "synthetic", "seq_len": seq}, "model": {"name": preset},
                               "train": {"batch_size": batch, "precision": precision, "lr": 1e-4,
                                         "weight_decay": 0.0, "duration": 10**9, "clip": 1.0}})
    torch.manual_seed(0)
    model = build_model(resolve_model_config(preset))
    windows = synthetic_batches(model.config.vocab_size, batch, seq)

    class Batches:
        i = 0

        def next_batch(self):
            w = windows[self.i % len(windows)]
            self.i += 1
            return {"input_ids": w[:, :-1], "labels": w[:, 1:]}

    run = Run(recipe, model, Batches(), [], torch.device("cpu"), 10**9, [])
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    return lambda: train_step(run, scaler), model


def hf_stepper(our_model, batch: int, seq: int, precision: str):
    from tinylm.models.hf import to_hf

    hf = to_hf(our_model)
    hf.train()
    opt = torch.optim.AdamW(hf.parameters(), lr=1e-4, weight_decay=0.0, foreach=True)
    windows = synthetic_batches(hf.config.vocab_size, batch, seq)
    state = {"i": 0}

    def step():
        w = windows[state["i"] % len(windows)]
        state["i"] += 1
        ctx = torch.autocast("cpu", dtype=torch.bfloat16) if precision == "bf16" else contextlib.nullcontext()
        with ctx:
            logits = hf(input_ids=w[:, :-1]).logits
        loss = F.cross_entropy(logits.float().flatten(0, 1), w[:, 1:].flatten())
        loss.backward()
        torch.nn.utils.clip_grad_norm_(hf.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
    return step


def measure(step, steps: int, tokens_per_step: int) -> float:
    t = time.perf_counter()
    for _ in range(steps):
        step()
    return steps * tokens_per_step / (time.perf_counter() - t)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--preset", default="babyllama2-16m")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--seq", type=int, default=128)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--steps", type=int, default=5, help="steps per round per contender")
    p.add_argument("--precision", nargs="+", default=["fp32", "bf16"])
    args = p.parse_args()
    import transformers

    results = []
    tokens = args.batch * args.seq
    for precision in args.precision:
        ours, model = tinylm_stepper(args.preset, args.batch, args.seq, precision)
        theirs = hf_stepper(model, args.batch, args.seq, precision)
        ours(), theirs()  # warm-up: allocations, first-call dispatch
        a, b = [], []
        for _ in range(args.rounds):
            a.append(measure(ours, args.steps, tokens))
            b.append(measure(theirs, args.steps, tokens))
        results.append({"precision": precision, "tinylm_tokens_per_s": round(statistics.median(a), 1),
                        "transformers_tokens_per_s": round(statistics.median(b), 1),
                        "ratio": round(statistics.median(a) / statistics.median(b), 3),
                        "tinylm_rounds": [round(x, 1) for x in a], "transformers_rounds": [round(x, 1) for x in b]})
    print(json.dumps({"benchmark": "training throughput", "preset": args.preset, "batch": args.batch,
                      "seq_len": args.seq, "rounds": args.rounds, "steps_per_round": args.steps,
                      "torch": torch.__version__, "transformers": transformers.__version__,
                      "threads": torch.get_num_threads(), "machine": platform.machine(),
                      "processor": platform.processor() or platform.machine(), "results": results}, indent=1))


if __name__ == "__main__":
    main()
