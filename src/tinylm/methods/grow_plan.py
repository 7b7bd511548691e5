"""GROW's curriculum as data: which layers each stage adds, when each phase begins, what trains.

Kept apart from the method so the same plan feeds the method, its tests and the compute
comparison: `incremental_compute` counts the FLOPs of exactly the curriculum the method runs (same
layout, same phase lengths, same trainable sets, on meta-device models) and puts it beside the
paper's closed form.
"""

from __future__ import annotations

import torch

from tinylm.compute import flops_per_token, incremental_closed_form
from tinylm.errors import UserError

ROLES = ("embeddings", "final_norm", "head")  # the parameters outside the blocks, by what they do
REMAINDERS = ("last", "spread")


def stage_layout(layers: int, stages: int, remainder: str = "last") -> list[int]:
    """Blocks added by each stage: m = L // S each and the remainder placed explicitly.

    `last`: the last stage adds the L - S*m left over (L=12, S=8: seven stages of 1, then 5);
    `spread`: the first L mod S stages add one more each (2,2,2,2,1,1,1,1). The paper's code used
    `L // S` per stage and no remainder, so with S=8 only 8 of 12 layers ever trained.
    """
    if stages < 1:
        raise UserError(f"grow: stages is {stages}: use 1 or more")
    if stages > layers:
        raise UserError(f"grow: {stages} stages for a {layers}-layer model: every stage adds at least one layer, "
                        f"so use stages <= {layers} (or a deeper model)")
    if remainder not in REMAINDERS:
        raise UserError(f"grow: remainder {remainder!r}: choose one of {', '.join(REMAINDERS)}")
    m, extra = divmod(layers, stages)
    if remainder == "last":
        return [m] * (stages - 1) + [m + extra]
    return [m + 1] * extra + [m] * (stages - extra)


def split_steps(total: int, stages: int) -> list[int]:
    """`total` steps in `stages` near-equal stages (the last takes what does not divide)."""
    base = total // stages
    return [base] * (stages - 1) + [total - base * (stages - 1)]


def build_plan(layout: list[int], lengths: list[int], phase1_fraction: float, start: int, total: int) -> list[dict]:
    """Segments in order: phase 1 and phase 2 of every stage, then the continual phase (if any steps are left).

    Each segment: kind (phase1 | phase2 | continual), stage (1-based; 0 for continual), start and
    end step, depth (blocks in the model), new (first, last) block index added by its stage.
    """
    plan, step, depth = [], start, 0
    for stage, (added, length) in enumerate(zip(layout, lengths), 1):
        if length < 2:
            raise UserError(f"grow: stage {stage} is {length} step(s): a stage needs at least 2 (one per phase); "
                            "lengthen `stage`/`incremental` or use fewer stages")
        first = min(length - 1, max(1, round(phase1_fraction * length)))
        new = [depth, depth + added]
        depth += added
        plan.append({"kind": "phase1", "stage": stage, "start": step, "end": step + first, "depth": depth, "new": new})
        plan.append({"kind": "phase2", "stage": stage, "start": step + first, "end": step + length, "depth": depth,
                     "new": new})
        step += length
    if step < total:
        plan.append({"kind": "continual", "stage": 0, "start": step, "end": total, "depth": depth,
                     "new": [depth, depth]})
    return plan


def role(name: str) -> str | None:
    """embeddings | final_norm | head for a parameter outside the blocks; None for a block's."""
    if name.startswith("layers."):
        return None
    if name.startswith(("embed", "conv_stem")):
        return "embeddings"
    if name.startswith("norm."):
        return "final_norm"
    return "head"  # lm_head, BERT's MLM transform/norm/bias and classification head


def trains(name: str, segment: dict, also, tied: bool) -> bool:
    """Whether parameter `name` trains in `segment`: all in phase 2 and continual; in phase 1 the stage's
    new blocks and the roles in `also` (a tied output layer is the embedding table: either role trains it)."""
    if segment["kind"] != "phase1":
        return True
    r = role(name)
    if r is None:
        index = int(name.split(".")[1])
        return segment["new"][0] <= index < segment["new"][1]
    if tied and name == "embed_tokens.weight":
        return "embeddings" in also or "head" in also
    return r in also


def plan_flops(config, plan: list[dict], seq_len: int, also) -> float:
    """FLOPs per token-of-a-step summed over the plan's steps (x tokens per step = the run's FLOPs)."""
    from tinylm.models import build_model

    total = 0.0
    for segment in plan:
        with torch.device("meta"):
            model = build_model(config.replace(n_layers=segment["depth"]))
        for name, p in model.named_parameters():
            p.requires_grad_(trains(name, segment, also, config.tie_embeddings))
        total += flops_per_token(model, seq_len) * (segment["end"] - segment["start"])
    return total


def incremental_compute(config, stages: int, baseline_steps: int = 10_000, seq_len: int = 1024,
                        phase1_fraction: float = 0.5, also=ROLES, remainder: str = "last",
                        tokens_per_step: int = 524_288) -> dict:
    """Our exact count of S stages over `baseline_steps` against the paper's closed form.

    Both answer: how many continual steps bring incremental training to the compute of the baseline's
    `baseline_steps`? They differ because the closed form (a) ignores embeddings, output layer and
    attention, which cost the same per token in every stage and so shrink the savings, (b) counts a
    backward pass as one forward (ours: twice, split into weight and input gradients), and (c) gives
    phase 1 no backward through the frozen blocks, whereas with trainable embeddings (`also`, the
    paper's code) the input gradients must cross every frozen block to reach them.
    """
    from tinylm.models import build_model

    layout = stage_layout(config.n_layers, stages, remainder)
    plan = build_plan(layout, split_steps(baseline_steps, stages), phase1_fraction, 0, baseline_steps)
    with torch.device("meta"):
        full = flops_per_token(build_model(config), seq_len)
    incremental = plan_flops(config, plan, seq_len, also)
    baseline = full * baseline_steps
    continual = (baseline - incremental) / full
    return {
        "model": {"n_layers": config.n_layers, "d_model": config.d_model, "vocab_size": config.vocab_size,
                  "seq_len": seq_len, "tokens_per_step": tokens_per_step},
        "layout": layout, "phase1_also": list(also),
        "closed_form": incremental_closed_form(stages, baseline_steps),
        "exact": {"cost_ratio": incremental / baseline, "continual_steps": continual,
                  "equal_compute_step": int(baseline_steps + continual + 0.5),
                  "baseline_flops_per_token": full, "baseline_flops": baseline * tokens_per_step,
                  "incremental_flops": incremental * tokens_per_step},
    }
