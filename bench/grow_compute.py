"""Incremental training's compute: the paper's closed form beside our exact count. Prints JSON.

For GPT-2 124M (or --model), S = 4, 8, 12 stages over a 10,000-step baseline: the step at which
incremental + continual training has spent the baseline's compute — the closed form (14,688 /
15,469 / 15,729), and our exact count of the same curriculum twice: as the paper's code runs it
(embeddings, final norm and output layer train in phase 1, so gradients cross every frozen block)
and as the paper's analysis assumes (phase 1 trains the new blocks only). See
`tinylm.methods.grow_plan.incremental_compute` for why they differ.

    python bench/grow_compute.py [--model gpt2-124m] [--steps 10000] [--seq 1024]
"""

from __future__ import annotations

import argparse
import json

from tinylm.methods.grow_plan import ROLES, incremental_compute
from tinylm.models import resolve_model_config


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--model", default="gpt2-124m")
    p.add_argument("--steps", type=int, default=10_000)
    p.add_argument("--seq", type=int, default=1024)
    p.add_argument("--stages", type=int, nargs="+", default=[4, 8, 12])
    args = p.parse_args()
    cfg = resolve_model_config(args.model)
    rows = []
    for stages in args.stages:
        coded = incremental_compute(cfg, stages, args.steps, args.seq, also=ROLES)
        assumed = incremental_compute(cfg, stages, args.steps, args.seq, also=[])
        rows.append({"stages": stages, "layout": coded["layout"],
                     "closed_form": {k: coded["closed_form"][k] for k in ("cost_ratio", "equal_compute_step")},
                     "exact_as_coded": {k: coded["exact"][k] for k in ("cost_ratio", "equal_compute_step")},
                     "exact_new_blocks_only": {k: assumed["exact"][k] for k in ("cost_ratio", "equal_compute_step")}})
    print(json.dumps({"model": args.model, "baseline_steps": args.steps, "seq_len": args.seq,
                      "baseline_flops_per_token": coded["exact"]["baseline_flops_per_token"], "stages": rows},
                     indent=1))


if __name__ == "__main__":
    main()
