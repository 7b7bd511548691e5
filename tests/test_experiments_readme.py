"""experiments/README.md is generated from experiments/results: the verdict rule, the renderer, and
that the committed page is exactly what the generator writes (so it can be neither typed nor stale)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"
sys.path.insert(0, str(EXPERIMENTS))  # the experiments import each other as top-level modules

import claims  # noqa: E402
import make_readme  # noqa: E402
from verdict import INCONCLUSIVE, NOT_REPRODUCED, NOT_TESTABLE, REPRODUCED, RULE, verdict  # noqa: E402


# --- the rule -------------------------------------------------------------------------------------

def test_a_difference_beyond_the_noise_with_the_papers_sign_is_reproduced():
    v = verdict([4.30, 4.31, 4.32], [4.40, 4.41, 4.42], "lower", names=("forgetter", "normal"))
    assert v.label == REPRODUCED
    assert "forgetter - normal = -0.1" in v.why and "as the paper says" in v.why


def test_a_difference_beyond_the_noise_with_the_opposite_sign_is_not_reproduced():
    assert verdict([4.50, 4.51, 4.52], [4.40, 4.41, 4.42], "lower").label == NOT_REPRODUCED
    assert verdict([0.30, 0.31, 0.32], [0.70, 0.72, 0.74], "higher").label == NOT_REPRODUCED


def test_the_direction_higher_is_the_mirror_of_lower():
    a, b = [0.80, 0.82, 0.81], [0.70, 0.71, 0.72]
    assert verdict(a, b, "higher").label == REPRODUCED
    assert verdict(a, b, "lower").label == NOT_REPRODUCED


def test_a_difference_within_the_seed_spread_is_inconclusive():
    v = verdict([4.30, 4.45, 4.38], [4.35, 4.50, 4.33], "lower")
    assert v.label == INCONCLUSIVE and "within the seed spread" in v.why


def test_a_small_difference_with_small_spread_at_three_seeds_is_still_inconclusive():
    """|t| = 2.4 is not enough at 3 seeds (df about 4 needs 2.8): a 2-standard-error rule would say otherwise."""
    v = verdict([0.0, 1.0, 2.0], [2.4 * 0.8165 + 1 + d for d in (-1.0, 0.0, 1.0)], "lower")
    assert v.label == INCONCLUSIVE


def test_an_arm_of_one_value_is_not_testable_with_the_reason():
    v = verdict([4.38, 4.37, 4.39], [4.40], "lower", names=("student", "ensemble"))
    assert v.label == NOT_TESTABLE and "ensemble: n=1" in v.why


def test_the_direction_must_be_lower_or_higher():
    with pytest.raises(ValueError, match="lower"):
        verdict([1, 2], [3, 4], "less")


# --- the renderer on a synthetic results directory --------------------------------------------------

def _stat(values):
    return {"mean": sum(values) / len(values), "std": 0.0, "n": len(values), "values": values}


def _forgetter_tiny(normal, longer, forgetter):
    arms = {}
    for name, best, final in (("normal", normal, normal), ("normal-3x", longer, [v + 0.4 for v in longer]),
                              ("forgetter", forgetter, forgetter)):
        steps = 300 if name == "normal" else 900
        runs = [{"seed": s, "steps": steps, "best_val_all": b, "final_val": f,
                 "events": [{"step": 150, "sleep": "light", "val_loss": 5.0}] if name == "forgetter" else []}
                for s, (b, f) in enumerate(zip(best, final))]
        arms[name] = {"runs": runs, "best_val_all": _stat(best), "best_val_equal_budget": _stat(best),
                      "steps": _stat([steps] * len(best))}
    return {"experiment": "forgetter-tiny", "n_steps_normal": 300, "tokens_per_step": 1536, "seeds": 3, "arms": arms}


REGIME_CLAIM = {"id": "forgetter.beats_normal", "claim": "FORGETTER beats the best normal run at 100M tokens.",
                "regime": "L22-8(4)-672x4-192 on BabyLM 10M, 61M tokens, 3 seeds",
                "tinylm": "val loss: forgetter 3.01 ± 0.01 (n=3) vs normal 3.05 ± 0.01 (n=3)",
                "verdict": REPRODUCED, "why": "forgetter - normal = -0.04, Welch t -4.9, p 0.008",
                "plots": ["forgetter-regime-curves.png", "forgetter-regime-missing.png"]}


@pytest.fixture
def results(tmp_path):
    """results/ with a tiny experiment (extractor), a regime one carrying its claims, an unknown one; a script."""
    res = tmp_path / "results"
    res.mkdir()
    (res / "forgetter-tiny.json").write_text(json.dumps(_forgetter_tiny(
        [4.38, 4.39, 4.40], [4.25, 4.26, 4.27], [4.31, 4.32, 4.33])))
    (res / "forgetter-regime.json").write_text(json.dumps({
        "experiment": "forgetter-regime", "command": "python experiments/forgetter_regime.py --seeds 3",
        "claims": [REGIME_CLAIM]}))
    (res / "mystery.json").write_text(json.dumps({"experiment": "mystery", "numbers": [1, 2]}))
    for png in ("forgetter-tiny-val-loss.png", "forgetter-regime-curves.png"):
        (res / png).write_bytes(b"\x89PNG")
    (tmp_path / "forgetter_tiny.py").write_text(
        '"""A tiny FORGETTER.\n\n    python experiments/forgetter_tiny.py [--seeds 3]\nPrints JSON.\n"""\n')
    return res


def test_the_page_has_title_rule_summary_and_a_section_per_claim(results):
    page = make_readme.render(results, scripts_dir=results.parent)
    assert page.startswith(make_readme.TITLE + "\n\n" + make_readme.INTRO)
    assert "## Verdict rule\n\n" + RULE in page
    assert "| claim | paper | regime | tinylm | verdict |" in page
    assert "### `forgetter.beats_normal`" in page and "### `forgetter.longer_normal_overfits`" in page
    assert claims.PAPER["forgetter.beats_normal"] in page


def test_the_extractors_verdicts_come_from_the_per_seed_values(results):
    rows, _ = claims.all_rows(results)
    tiny = {(r["id"], r["tinylm"].split(" vs ")[1].split(" ")[0]): r  # (claim, the arm compared against)
            for r in rows if r["experiment"] == "forgetter-tiny"}
    assert tiny[("forgetter.beats_normal", "normal")]["verdict"] == REPRODUCED        # 4.32 < 4.39
    assert tiny[("forgetter.beats_normal", "normal-3x")]["verdict"] == NOT_REPRODUCED  # 4.32 > 4.26
    assert tiny[("forgetter.longer_normal_overfits", "normal")]["verdict"] == REPRODUCED  # final 4.66 > 4.39
    assert "forgetter 4.320 ± 0.010 (n=3)" in tiny[("forgetter.beats_normal", "normal")]["tinylm"]


def test_a_claims_list_is_rendered_as_it_is_beside_the_older_tiny_result(results):
    page = make_readme.render(results, scripts_dir=results.parent)
    section = page.split("### `forgetter.beats_normal`")[1].split("\n### ")[0]
    assert "**forgetter-regime**" in section and "**forgetter-tiny**" in section  # which is which
    assert f"{REGIME_CLAIM['claim']} Regime" not in section  # one regime per experiment, said once
    assert REGIME_CLAIM["tinylm"] in section and REGIME_CLAIM["why"] in section
    assert f"| **forgetter-regime**: {REGIME_CLAIM['regime']} | {REGIME_CLAIM['tinylm']} | **reproduced** |" in page


def test_plots_link_only_to_files_that_exist(results):
    page = make_readme.render(results, scripts_dir=results.parent)
    assert "[forgetter-regime-curves.png](results/forgetter-regime-curves.png)" in page
    assert "[forgetter-tiny-val-loss.png](results/forgetter-tiny-val-loss.png)" in page
    assert "(results/forgetter-regime-missing.png)" not in page
    assert "not in `results/`: forgetter-regime-missing.png" in page


def test_rerun_comes_from_the_json_command_else_the_scripts_usage_line(results):
    page = make_readme.render(results, scripts_dir=results.parent)
    assert "the command it recorded: `python experiments/forgetter_regime.py --seeds 3`" in page
    assert "its script: `python experiments/forgetter_tiny.py [--seeds 3]`" in page


def test_results_without_claims_and_claims_without_results_are_listed(results):
    page = make_readme.render(results, scripts_dir=results.parent)
    assert "`results/mystery.json` (experiment 'mystery')" in page
    waiting = page.split("## Claims without a result yet")[1]
    assert "`combo.sleep_distill`" in waiting and "`forgetter.beats_normal`" not in waiting


def test_a_claims_row_needs_a_paper_entry_and_a_verdict_the_rule_gives(results):
    path = results / "forgetter-regime.json"
    path.write_text(json.dumps({"experiment": "x", "claims": [{**REGIME_CLAIM, "id": "nobody.said"}]}))
    with pytest.raises(ValueError, match="nobody.said.*no PAPER entry"):
        make_readme.render(results, scripts_dir=results.parent)
    path.write_text(json.dumps({"experiment": "x", "claims": [{**REGIME_CLAIM, "verdict": "looks good"}]}))
    with pytest.raises(ValueError, match="looks good"):
        make_readme.render(results, scripts_dir=results.parent)


def test_the_papers_are_quoted_for_the_claims_new_experiments_emit():
    for claim_id in ("grow.equal_compute", "forgetter.beats_normal", "encoders.pretraining_gap",
                     "combo.sleep_distill", "combo.grow_forget"):
        assert claims.PAPER[claim_id]
    assert "to be done" in claims.PAPER["combo.sleep_distill"]


def test_check_exits_1_on_a_stale_page_and_0_on_a_fresh_one(results, capsys):
    out = results.parent / "README.md"
    assert make_readme.main(["--results", str(results), "--out", str(out)]) == 0
    assert make_readme.main(["--check", "--results", str(results), "--out", str(out)]) == 0
    out.write_text(out.read_text() + "typed by hand\n")
    assert make_readme.main(["--check", "--results", str(results), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "stale" in err


# --- the committed page -----------------------------------------------------------------------------

def test_the_committed_readme_is_what_make_readme_generates_from_the_committed_results():
    committed = (EXPERIMENTS / "README.md").read_text(encoding="utf-8")
    assert committed == make_readme.render(EXPERIMENTS / "results"), \
        "experiments/README.md is stale or edited by hand: run `python experiments/make_readme.py` and commit it"


def test_every_committed_result_gives_claims_or_measures_a_regime():
    rows, silent = claims.all_rows(EXPERIMENTS / "results")
    assert not silent, f"results no extractor reads: {[name for name, _ in silent]}"
    assert {r["experiment"] for r in rows} >= {"grow-tiny", "forgetter-tiny", "encoders-tiny", "finetune-lr-grid",
                                                 "distill-tiny", "gaff-tiny"}


# --- two ladders of one family (the same experiment at two model sizes) ---------------------------------

def _ladder(model: str) -> dict:
    rungs = [{"n": n, "val_loss": 5.0 - n / 1000, "val_loss_doubled": 5.0 - n / 500, "drop": n / 1000}
             for n in (240, 480, 960)]
    return {"experiment": "grow-ladder", "model": {"name": model, "flavour": "gpt2"}, "rule": "flat rule",
            "delta": 0.05, "n": 960, "reached": False, "rungs": rungs}


def _grown(ladder: str) -> dict:
    claim = {k: v for k, v in REGIME_CLAIM.items() if k != "plots"}  # the plots: those the file's name owns
    claim.update(id="grow.equal_compute", claim=f"Grown, behind ({ladder}).")
    return {"experiment": "grow-regime", "ladder": ladder, "n_steps_baseline": 480, "regime": {},
            "claims": [claim]}


@pytest.fixture
def two_ladders(tmp_path):
    res = tmp_path / "results"
    res.mkdir()
    for tag in ("", "-L4-4-64x4"):
        (res / f"grow-ladder{tag}.json").write_text(json.dumps(_ladder("L4-4-64x4" if tag else "L4-4-128x4")))
        (res / f"grow-regime{tag}.json").write_text(json.dumps(_grown(f"grow-ladder{tag}.json")))
        (res / f"grow-regime{tag}.png").write_bytes(b"\x89PNG")
    return res


def test_a_ladder_lists_only_the_comparisons_made_on_it(two_ladders):
    page = make_readme.render(two_ladders, scripts_dir=two_ladders.parent)
    small = next(line for line in page.splitlines() if line.startswith("- **grow-ladder** of L4-4-64x4"))
    large = next(line for line in page.splitlines() if line.startswith("- **grow-ladder** of L4-4-128x4"))
    assert "compared: grow-regime (grow-regime-L4-4-64x4.json) at N = 480" in small
    assert "compared: grow-regime (grow-regime.json) at N = 480" in large
    assert "(grow-regime.json)" not in small and "L4-4-64x4.json)" not in large


def test_each_of_two_results_of_one_experiment_links_its_own_plot(two_ladders):
    rows, _ = claims.all_rows(two_ladders)
    plots = {r["source"]: r["plots"] for r in rows}
    assert plots == {"grow-regime.json": ["grow-regime.png"],
                     "grow-regime-L4-4-64x4.json": ["grow-regime-L4-4-64x4.png"]}


def test_a_rung_whose_loss_rose_is_shown_as_a_rise(tmp_path):
    res = tmp_path / "results"
    res.mkdir()
    ladder = _ladder("L4-2-64x4")
    ladder["rungs"][-1].update(val_loss=7.086, val_loss_doubled=7.234, drop=-0.148)
    (res / "grow-ladder.json").write_text(json.dumps(ladder))
    page = make_readme.render(res, scripts_dir=tmp_path)
    assert "960 → 1920: 7.086 → 7.234 (+0.148)" in page and "(−0.240)" in page.split("960 →")[0]
