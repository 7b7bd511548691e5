"""The structure space: every candidate obeys every constraint, none is missing, the order covers depths."""

import pytest

from tinylm.errors import UserError
from tinylm.sweep.structures import (StructureSpace, depth_balanced_order, nearest_multiple, parse_int_range,
                                     spread)

PAPER = StructureSpace(target_heads=160, band=0.1, layers=tuple(range(4, 49)), widths=(648, 672),
                       head_dims=tuple(range(64, 289, 32)), kv_divides=True)


@pytest.mark.parametrize("space", [StructureSpace(), PAPER,
                                   StructureSpace(target_heads=12, band=0.3, layers=(1, 2, 3, 5), widths=(100,),
                                                  head_dims=(16, 24), kv_divides=True, ffn_mult=3)])
def test_every_candidate_obeys_every_constraint(space):
    lo, hi = space.head_band
    candidates = space.candidates()
    assert candidates and len(set(candidates)) == len(candidates)
    for s in candidates:
        assert lo <= s.layers * s.heads <= hi and s.total_heads == s.layers * s.heads
        assert s.layers in space.layers and s.head_dim in space.head_dims and s.ffn_mult == space.ffn_mult
        assert s.heads % s.kv_heads == 0 and (space.kv_divides or s.kv_heads == s.heads)
        assert s.width % s.heads == 0
        assert any(abs(s.width - w) <= s.heads / 2 for w in space.widths)  # the nearest multiple


def test_nothing_is_missing():
    space = StructureSpace(target_heads=12, band=0.25, layers=(1, 2, 3, 4, 7), widths=(64,), head_dims=(8, 16),
                           kv_divides=True)
    brute = {(L, h, kv, hd) for L in space.layers for h in range(1, 40) for kv in range(1, h + 1)
             for hd in space.head_dims if 9 <= L * h <= 15 and h % kv == 0}
    assert {(s.layers, s.heads, s.kv_heads, s.head_dim) for s in space.candidates()} == brute


def test_forgetters_table_models_are_candidates():
    specs = {s.spec for s in PAPER.candidates()}
    assert "L22-8(4)-672x4-192" in specs   # Table 2, FORGETTER (176 heads)
    assert "L48-3(1)-648x4-288" in specs   # Table 2, normal (144 heads)
    # The paper's "about 120" at +-10% excludes both: its own best models had 144-176 heads.
    assert "L22-8(4)-672x4-192" not in {s.spec for s in StructureSpace(kv_divides=True).candidates()}


def test_without_kv_divides_kv_equals_heads_and_the_spec_says_so():
    s = StructureSpace(target_heads=176, band=0, layers=(22,), head_dims=(192,)).candidates()
    assert [c.spec for c in s] == ["L22-8-672x4-192"]
    with_kv = StructureSpace(target_heads=176, band=0, layers=(22,), head_dims=(192,), kv_divides=True)
    assert [c.spec for c in with_kv.candidates()] == ["L22-8(1)-672x4-192", "L22-8(2)-672x4-192",
                                                       "L22-8(4)-672x4-192", "L22-8-672x4-192"]


def test_width_rounds_to_the_nearest_multiple_of_the_heads():
    assert nearest_multiple(672, 8) == 672 and nearest_multiple(672, 9) == 675 and nearest_multiple(672, 10) == 670
    assert nearest_multiple(672, 5) == 670 and nearest_multiple(3, 8) == 8


def test_an_empty_space_says_which_constraint_and_how_to_widen_it():
    with pytest.raises(UserError, match=r"120-120 query heads.*--band.*--layers"):
        StructureSpace(target_heads=120, band=0.0, layers=(7, 9)).candidates()
    with pytest.raises(UserError, match="--band"):
        StructureSpace(band=1.5).candidates()


def test_range_syntax():
    assert parse_int_range("4:48", "--layers") == tuple(range(4, 49))
    assert parse_int_range("64:288", "--head-dim", step=32) == (64, 96, 128, 160, 192, 224, 256, 288)
    assert parse_int_range("64:288:16", "--head-dim", step=32)[:3] == (64, 80, 96)
    assert parse_int_range("672", "--width") == (672,) and parse_int_range("704,640", "--width") == (640, 704)
    for bad in ("48:4", "a:b", "4:8:0", "0", "1:2:3:4"):
        with pytest.raises(UserError, match="--layers"):
            parse_int_range(bad, "--layers")


def test_order_visits_every_depth_first_and_is_a_seeded_permutation():
    assert spread(5) == [0, 4, 2, 1, 3] and sorted(spread(45)) == list(range(45))
    candidates = StructureSpace().candidates()
    order = depth_balanced_order(candidates, seed=0)
    assert sorted(order) == list(range(len(candidates)))
    depths = sorted({s.layers for s in candidates})
    first = [candidates[i].layers for i in order[:len(depths)]]
    assert sorted(first) == depths and first[:2] == [depths[0], depths[-1]]
    assert depth_balanced_order(candidates, seed=0) == order != depth_balanced_order(candidates, seed=1)


def test_a_preset_recipe_keeps_its_architecture_and_leaves_the_shape_to_the_candidates():
    from tinylm.sweep.structures import model_section
    fields = model_section({"name": "forgetter-baby10m-normal", "max_seq_len": 256})
    assert fields["flavour"] == "gemma" and fields["mlp_bias"] is True and fields["activation"] == "gelu"
    assert fields["max_seq_len"] == 256
    assert not {"n_layers", "n_heads", "head_dim", "d_model", "vocab_size"} & set(fields)
    assert model_section({"name": "L2-4-32x2", "flavour": "llama", "head_dim": 8}) == {"flavour": "llama"}


def test_candidates_that_cannot_be_built_are_named():
    from tinylm.sweep.structures import check_candidates
    odd = StructureSpace(target_heads=4, band=0, layers=(1,), widths=(32,), head_dims=(15,)).candidates()
    with pytest.raises(UserError, match=r"candidate L1-4-32x4-15: .*rotary"):
        check_candidates(odd, {"name": "(swept)", "flavour": "llama"})


# ------------------------------------------------------------------ the plan a sweep shows before it starts
TINY_SWEEP = ["--target-heads", "8", "--band", "0.25", "--layers", "1:4", "--width", "32", "--head-dim", "8:16:8",
              "--budget", "2 steps", "--quiet", "--trials", "1"]


@pytest.mark.parametrize("spec, flavour, kind", [("L3-4(2)-48x4-16", "gemma", "decoder"),
                                                 ("L2-4-32x2", "gpt2", "decoder"), ("bert-1", None, "encoder")])
def test_the_plans_flops_per_token_are_computes_without_building_a_model(spec, flavour, kind):
    from tinylm.compute import flops_per_token as counted
    from tinylm.models import build_model, resolve_model_config
    from tinylm.sweep.plan import flops_per_token

    cfg = resolve_model_config(spec, flavour=flavour, vocab_size=300, max_seq_len=64)
    assert cfg.kind == kind
    assert flops_per_token(cfg, 64) == pytest.approx(counted(build_model(cfg), 64), rel=1e-12)


def test_far_larger_means_more_than_100_runs_or_30_minutes_estimated():
    from tinylm.sweep.plan import FAR_MINUTES, FAR_RUNS, Plan

    def plan(runs, seconds):
        return Plan(runs, 10, 512, (1, 2), 1, flops=seconds * 1e9, flops_per_s=1e9)

    assert (FAR_RUNS, FAR_MINUTES) == (100, 30)
    assert not plan(100, 1800).far_larger and not plan(100, 1800).reasons()
    assert plan(101, 10).far_larger and plan(101, 10).reasons() == ["101 runs (more than 100)"]
    assert plan(1, 1801).far_larger and "30 min" in plan(1, 1801).reasons()[0]
    assert not Plan(5, None, 512, (1, 2), 1, None, None).far_larger  # epochs, store not prepared: no estimate


def test_the_readme_sweep_on_the_tiny_recipe_says_its_size_and_wants_yes(tmp_path, capsys):
    pytest.importorskip("optuna")
    from tinylm.cli.main import main

    out = tmp_path / "sweeps" / "heads"
    code = main(["sweep", "forgetter-tiny", "--out", str(out), "--target-heads", "120", "--budget", "200 steps"])
    shown = capsys.readouterr()
    assert code == 2 and len(shown.err.strip().splitlines()) == 1 and "Traceback" not in shown.err
    for needle in ("far larger than its recipe", "560 runs (more than 100)", "--yes"):
        assert needle in shown.err
    assert "plan: 560 runs of 200 steps" in shown.out and "the recipe's own: 7.4M" in shown.out
    assert "about" in shown.out and "GFLOP/s" in shown.out  # the estimate, from the probe
    assert not out.parent.exists()


def test_a_small_sweep_starts_without_asking(tiny_recipe, tmp_path, capsys):
    pytest.importorskip("optuna")
    from tinylm.cli.main import main

    assert main(["sweep", str(tiny_recipe()), "--out", str(tmp_path / "s"), *TINY_SWEEP]) == 0
    assert "plan: 1 run of 2 steps" in capsys.readouterr().out
    assert (tmp_path / "s" / "ranking.json").is_file()


@pytest.mark.parametrize("answer, code", [("n", 1), ("", 1), ("y", 0)])
def test_on_a_terminal_a_far_larger_sweep_asks(tiny_recipe, tmp_path, monkeypatch, capsys, answer, code):
    pytest.importorskip("optuna")
    import tinylm.cli.sweep as sweep_cli
    import tinylm.sweep.plan as plan
    from tinylm.cli.main import main

    monkeypatch.setattr(plan, "FAR_RUNS", 0)  # this one-run sweep counts as far larger
    monkeypatch.setattr(sweep_cli, "_on_terminal", lambda: True)
    asked = []
    monkeypatch.setattr("builtins.input", lambda prompt: asked.append(prompt) or answer)
    out = tmp_path / "s"
    assert main(["sweep", str(tiny_recipe()), "--out", str(out), *TINY_SWEEP]) == code
    assert len(asked) == 1 and "[y/N]" in asked[0] and "1 runs (more than 0)" in asked[0]
    assert out.exists() == (code == 0)


def test_yes_starts_a_far_larger_sweep_without_a_terminal(tiny_recipe, tmp_path, monkeypatch):
    pytest.importorskip("optuna")
    import tinylm.sweep.plan as plan
    from tinylm.cli.main import main

    monkeypatch.setattr(plan, "FAR_RUNS", 0)
    argv = ["sweep", str(tiny_recipe()), "--out", str(tmp_path / "s"), *TINY_SWEEP]
    assert main(argv) == 2 and not (tmp_path / "s").exists()
    assert main(argv + ["--yes"]) == 0 and (tmp_path / "s" / "ranking.json").is_file()


def test_a_hyperparameter_sweep_of_many_trials_wants_yes_before_anything_is_written(one_line_error, tiny_recipe,
                                                                                    tmp_path):
    pytest.importorskip("optuna")
    space = tmp_path / "space.yaml"
    space.write_text("train.lr: {low: 1e-3, high: 1e-2, log: true}\n")
    out = tmp_path / "hp"
    one_line_error(["sweep", str(tiny_recipe()), "--space", str(space), "--out", str(out), "--trials", "95",
                    "--stability", "3"], "101 runs (more than 100)", "--yes")
    assert not out.exists()
