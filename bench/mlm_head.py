"""The masked LM's head at its labelled positions only, against the head over every position.

A tiny encoder's MLM head ends in a decoder over the whole vocabulary: at d_model 64 and bert-base-uncased's
30,522 tokens that matmul (and its log-softmax) is most of a training step, yet only the masked 15% of the
positions have a label. `Objective` heads only those (`Encoder.forward(at=)`); asking for the logits
(`return_logits=True`, as a method that reads them does) still runs the full head, which is the "before"
here. Both arms train the same model on the same batches, alternating round by round in one process, so
a busy machine slows both alike. Prints JSON: steps/s of each arm and their ratio.

    python bench/mlm_head.py                       # encoders_regime.py's model and batch: L4-2-64x4, 32 x 64
    python bench/mlm_head.py --preset L2-2-32x2 --vocab 500 --batch 2 --seq 16 --rounds 1 --steps 2
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import torch

from tinylm.models import build_model, resolve_model_config
from tinylm.train.objective import Objective


def batches(vocab: int, batch: int, seq: int, n: int, mask: float, seed: int = 0) -> list[tuple]:
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        ids = torch.randint(5, vocab, (batch, seq), generator=g)
        labels = torch.where(torch.rand(ids.shape, generator=g) < mask, ids, torch.full_like(ids, -100))
        out.append((ids, labels))
    return out


def steps_per_s(objective, optimizer, data, full_head: bool) -> float:
    start = time.perf_counter()
    for ids, labels in data:
        loss = objective(ids, None, labels, full_head)[0]
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return len(data) / (time.perf_counter() - start)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="L4-2-64x4")
    p.add_argument("--vocab", type=int, default=30522, help="bert-base-uncased's")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--seq", type=int, default=64)
    p.add_argument("--mask", type=float, default=0.15, help="the fraction of positions with a label")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--steps", type=int, default=20, help="training steps per arm per round")
    p.add_argument("--threads", type=int, default=1, help="torch threads (the experiments run one per process)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = build_model(resolve_model_config(args.preset, flavour="bert", vocab_size=args.vocab,
                                             max_seq_len=max(64, args.seq)))
    objective = Objective(model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    data = batches(args.vocab, args.batch, args.seq, args.steps, args.mask)
    steps_per_s(objective, optimizer, data[:2], True)  # warm-up: allocator, optimizer state
    steps_per_s(objective, optimizer, data[:2], False)
    arms = {"full_head": [], "labelled_only": []}
    for _ in range(args.rounds):
        for arm in arms:
            arms[arm].append(steps_per_s(objective, optimizer, data, arm == "full_head"))
    median = {arm: statistics.median(v) for arm, v in arms.items()}
    print(json.dumps({"bench": "mlm_head", "preset": args.preset, "vocab": args.vocab, "batch": args.batch,
                      "seq": args.seq, "mask": args.mask, "threads": args.threads, "rounds": args.rounds,
                      "steps_per_round": args.steps, "cpu": platform.processor() or platform.machine(),
                      "torch": torch.__version__, "steps_per_s": arms, "median_steps_per_s": median,
                      "speedup": median["labelled_only"] / median["full_head"]}, indent=1))


if __name__ == "__main__":
    main()
