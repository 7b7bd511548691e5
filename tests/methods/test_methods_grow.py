"""grow (incremental layer-wise training): the stage layout with its remainder, what trains in each
phase, the optimizer across growths, bad options, FLOPs that follow the curriculum, and train ->
checkpoint -> resume bitwise equal in phase 1 and mid-stage, alone and beside sleep.
"""

import pytest
import torch

from tinylm.errors import UserError
from tinylm.methods import build_methods
from tinylm.methods.grow_plan import plan_flops, stage_layout
from tinylm.rundir.checkpoints import read_model_config
from tinylm.train.loop import train
from tinylm.rundir.metrics import read_metrics
from tinylm.train.recipe import load_recipe
from tinylm.rundir.serialize import load_tree


def _grow_run(make_run, options, steps, model="L4-2-16x2", watch=None, **train_section):
    methods = build_methods([{"grow": options}]) + ([watch] if watch else [])
    return make_run(methods=methods, steps=steps, model=model, **train_section)


def _trainable(run):
    return {n for n, p in run.model.named_parameters() if p.requires_grad}


def test_layout_places_the_remainder_explicitly():
    assert stage_layout(12, 8) == [1, 1, 1, 1, 1, 1, 1, 5]      # the paper's code: 12 // 8 = 1, 8 layers only
    assert stage_layout(12, 8, "spread") == [2, 2, 2, 2, 1, 1, 1, 1]
    assert stage_layout(12, 4) == [3, 3, 3, 3] and stage_layout(12, 12) == [1] * 12
    assert all(sum(stage_layout(12, s, r)) == 12 for s in range(1, 13) for r in ("last", "spread"))
    with pytest.raises(UserError, match="stages <= 12"):
        stage_layout(12, 13)


def test_all_twelve_layers_train_with_eight_stages(Watch, make_run):
    first_seen = {}

    def remember(run):  # each block's weights when it first takes part in a step
        for name, p in run.model.named_parameters():
            first_seen.setdefault(name, p.detach().clone())
    run = _grow_run(make_run, {"stages": 8}, steps=32, model="L12-2-16x2", watch=Watch(remember))
    train(run)
    assert run.model.config.n_layers == 12 and len(run.model.layers) == 12
    for i in range(12):
        block = {n: p for n, p in run.model.named_parameters() if n.startswith(f"layers.{i}.")}
        assert block and all(not torch.equal(p, first_seen[n]) for n, p in block.items() if n.endswith("weight")), i
    assert [(s["start"], s["depth"]) for s in run.methods[0].plan if s["kind"] == "phase1"] == [
        (0, 1), (4, 2), (8, 3), (12, 4), (16, 5), (20, 6), (24, 7), (28, 12)]


@pytest.mark.parametrize("also", [["embeddings", "final_norm", "head"], [], ["final_norm"]])
def test_phase1_trains_the_new_blocks_and_the_extras_phase2_all(Watch, make_run, also):
    watch = Watch(lambda run: (_trainable(run), {n: p.detach().clone() for n, p in run.model.named_parameters()}))
    run = _grow_run(make_run, {"stages": 2, "phase1_also": also}, steps=16, watch=watch)  # llama: untied head
    train(run)
    seen = dict(watch.seen)
    extras = {"embeddings": {"embed_tokens.weight"}, "final_norm": {"norm.weight"}, "head": {"lm_head.weight"}}
    wanted = set().union(*(extras[r] for r in also))
    assert all(n.startswith(("layers.0.", "layers.1.")) or n in wanted for n in seen[0][0])  # stage 1, phase 1
    assert {n for n in seen[8][0] if not n.startswith(("layers.2.", "layers.3."))} == wanted  # stage 2, phase 1
    assert any(n.startswith("layers.2.") for n in seen[8][0])
    assert seen[12][0] == {n for n, _ in run.model.named_parameters()}                      # stage 2, phase 2
    before, after = seen[8][1], seen[12][1]
    for name in before:  # frozen in phase 1: no update, no weight decay
        if name not in seen[8][0]:
            assert torch.equal(before[name], after[name]), name
    assert not torch.equal(before["layers.2.attn.qkv_proj.weight"], after["layers.2.attn.qkv_proj.weight"])


def test_tied_output_trains_in_phase1_when_head_is_asked(Watch, make_run):
    watch = Watch(_trainable)
    run = _grow_run(make_run, {"stages": 2, "phase1_also": ["head"]}, steps=16, watch=watch, flavour="gemma")
    train(run)
    assert "embed_tokens.weight" in dict(watch.seen)[8]


def _state_steps(run, names):
    """AdamW step counts by name: live, parked (frozen) or None."""
    state = run.optimizer_state()
    return {n: int(state[n]["step"]) if n in state else None for n in names}


@pytest.mark.parametrize("mode", ["keep", "reset"])
def test_optimizer_keep_or_reset_at_a_growth(Watch, make_run, mode):
    names = ["layers.0.attn.qkv_proj.weight", "layers.2.attn.qkv_proj.weight", "embed_tokens.weight"]
    watch = Watch(lambda run: _state_steps(run, names))
    run = _grow_run(make_run, {"stages": 2, "optimizer": mode, "continual_optimizer": "reset",
                               "incremental": "16 steps"}, steps=20, watch=watch)
    train(run)
    seen = dict(watch.seen)
    old, new, emb = names
    assert seen[8][old] == (8 if mode == "keep" else None)   # growth at 8: layer 0 frozen (parked) or reset
    assert seen[8][new] is None                              # a new block starts fresh either way
    assert seen[12] == ({old: 8, new: 4, emb: 12} if mode == "keep" else {old: None, new: 4, emb: 4})
    assert seen[16] == {old: None, new: None, emb: None}     # continual phase: a fresh AdamW
    assert seen[19] == {old: 3, new: 3, emb: 3}


def test_logged_flops_follow_the_curriculum(make_run, tmp_path):
    run = _grow_run(make_run, {"stages": 2, "incremental": "16 steps"}, steps=20, out_dir=tmp_path / "r",
                    log_every=1)
    cfg = run.model.config.replace(n_layers=4)
    train(run)
    run.metrics.close()
    grow = run.methods[0]
    assert run.flops == pytest.approx(plan_flops(cfg, grow.plan, 16, grow.config.phase1_also) * run.tokens_per_step,
                                      rel=1e-12)
    records = read_metrics(tmp_path / "r" / "metrics.jsonl")
    flops = {0: 0.0, **{r["step"]: r["flops"] for r in records if "loss" in r and "event" not in r}}
    per_step = {k: flops[k] - flops[k - 1] for k in range(1, 21)}
    stage1, phase1, phase2, continual = per_step[3], per_step[10], per_step[14], per_step[18]
    assert len({per_step[k] for k in range(1, 9)}) == 1          # stage 1: two blocks, all of it trains
    assert stage1 < phase1 < phase2 == continual                   # frozen blocks 0-1 cost no weight gradients
    assert [(r["step"], r["phase"]) for r in records if r.get("event") == "grow_phase"] == [
        (0, "phase1"), (4, "phase2"), (8, "phase1"), (12, "phase2"), (16, "continual")]


@pytest.mark.parametrize("options, needle", [
    ({"stages": 0}, "stages is 0"),
    ({"phase1_fraction": 0}, "between 0 and 1"),
    ({"phase1_fraction": 1.5}, "between 0 and 1"),
    ({"phase1_also": ["lm_head"]}, "phase1_also"),
    ({"stage": "10 steps", "incremental": "20 steps"}, "not both"),
    ({"optimizer": "fresh"}, "keep, reset"),
    ({"stage": "ten steps"}, "10k steps"),
])
def test_bad_options_are_one_line_errors(options, needle):
    with pytest.raises(UserError, match="method 'grow'") as e:
        build_methods([{"grow": options}])
    assert needle in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("options, needle", [
    ({"stages": 3}, "stages <= 2"),                  # tiny_recipe's model has 2 layers
    ({"stages": -1}, "stages is -1"),
    ({"phase1_fraction": 1.0}, "between 0 and 1"),
    ({"stage": "30 steps"}, "take 60 steps but the run has 40"),
])
def test_bad_curricula_from_the_cli(one_line_error, tiny_recipe, tmp_path, options, needle):
    path = tiny_recipe(methods=[{"grow": options}])
    one_line_error(["train", str(path), "--out", str(tmp_path / "r"), "--quiet"], "grow", needle)


def test_grow_beside_sleeps_rollbacks_is_refused(one_line_error, tiny_recipe, tmp_path):
    path = tiny_recipe(methods=[{"sleep": {"episode": "10 steps"}}, "grow"])
    one_line_error(["train", str(path), "--out", str(tmp_path / "r"), "--quiet"], "policy: light")


# -- resume ---------------------------------------------------------------------------------------------
# 4 layers, 2 stages of 14 steps (phase 1: 7), continual from 28 with a fresh AdamW, 40 steps in all.
GROW = {"grow": {"stages": 2, "incremental": "28 steps", "continual_optimizer": "reset"}}


@pytest.mark.parametrize("stop_at, depth, frozen_blocks", [(10, 2, set()), (17, 4, {0, 1})])
def test_resume_is_bitwise_in_phase1_and_mid_stage(tiny_recipe, resumes_exactly, stop_at, depth, frozen_blocks):
    recipe = load_recipe(str(tiny_recipe(methods=[GROW], model={"name": "L4-4-32x2", "flavour": "llama"})),
                         ["checkpoint.every=0"])
    straight, resumed = resumes_exactly(recipe, stop_at=stop_at)
    ckpt = resumed / "checkpoints" / f"step-{stop_at:08d}"
    assert read_model_config(ckpt)["n_layers"] == depth
    state = load_tree(ckpt, "state")
    assert {int(n.split(".")[1]) for n in state["frozen"]} == frozen_blocks
    if frozen_blocks:  # the frozen blocks' AdamW state is parked in the checkpoint, not lost
        assert "layers.0.attn.qkv_proj.weight" in state["optimizer"]
    assert read_model_config(resumed / "checkpoints" / "step-00000040")["n_layers"] == 4

    def events(run_dir):
        return [(r["step"], r["event"]) for r in read_metrics(run_dir / "metrics.jsonl") if "event" in r]
    assert events(straight) == events(resumed)
    assert abs(read_metrics(straight / "metrics.jsonl")[-1]["flops"]
               - read_metrics(resumed / "metrics.jsonl")[-1]["flops"]) == 0


def test_grow_and_deep_sleeps_together_resume_bitwise(tiny_recipe, resumes_exactly):
    methods = [{"sleep": {"episode": "6 steps", "policy": "deep"}}, {"grow": {"stages": 2}}]
    recipe = load_recipe(str(tiny_recipe(methods=methods, model={"name": "L4-4-32x2", "flavour": "llama"})),
                         ["checkpoint.every=0"])
    straight, resumed = resumes_exactly(recipe, stop_at=25)  # phase 1 of stage 2 (20 steps a stage)
    kinds = {r["event"] for r in read_metrics(resumed / "metrics.jsonl") if "event" in r}
    assert {"rebuild_model", "grow", "truncate", "grow_phase"} <= kinds


def test_a_rollback_cannot_cross_a_growth(make_run):
    run = make_run(model="L2-2-16x2")
    run.snapshot("before")
    run.grow(1)
    with pytest.raises(UserError, match="cannot undo growth") as e:
        run.rollback("before")
    assert "\n" not in str(e.value)


def test_schedule_per_stage_restarts_at_every_stage_and_the_continual_phase(Watch, make_run):
    watch = Watch(lambda run: run.schedule.factor(run.step))
    run = _grow_run(make_run, {"stages": 2, "incremental": "16 steps", "schedule": "stage", "remainder": "spread"},
                    steps=20, watch=watch, schedule="linear")
    train(run)
    assert [f for _, f in watch.seen] == pytest.approx(
        [1 - i / 8 for i in range(8)] * 2 + [1 - i / 4 for i in range(4)])
