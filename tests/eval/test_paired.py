"""Per-item results (`tinylm eval` writes <task>.items.jsonl) and `tinylm compare A B --paired`:
exact McNemar, the stratified paired bootstrap, seed averaging, and the mismatch refused in one line."""

import json
import shutil

import numpy as np
import pytest

from tinylm.cli.main import main
from tinylm.eval.paired import compare_task, mcnemar, stratified_bootstrap_sums


@pytest.mark.parametrize("b, c", [(0, 1), (1, 0), (3, 3), (1, 9), (7, 2), (12, 30), (250, 300), (0, 1000),
                                  (40_000, 41_000), (2, 60_000)])
def test_mcnemar_is_the_two_sided_binomial_test_of_the_discordant_pairs(b, c):
    from scipy.stats import binomtest

    expected = binomtest(min(b, c), b + c, 0.5).pvalue
    assert mcnemar(b, c) == pytest.approx(expected, rel=1e-9, abs=1e-300)
    assert mcnemar(c, b) == mcnemar(b, c)


def test_mcnemar_without_discordant_pairs_is_one():
    assert mcnemar(0, 0) == 1.0


def _index_bootstrap(values, strata, resamples, rng):
    """The textbook way: draw each stratum's indices with replacement, one resample at a time."""
    out = np.empty((resamples, len(np.unique(strata))))
    for r in range(resamples):
        for j, s in enumerate(np.unique(strata)):
            v = values[strata == s]
            out[r, j] = v[rng.integers(len(v), size=len(v))].sum()
    return out


def test_bootstrap_is_reproducible_and_distributed_as_resampling_indices():
    rng = np.random.default_rng(1)
    values = rng.choice([-1.0, 0.0, 0.0, 1.0, 1.0], size=90)
    strata = np.repeat([0, 1, 2], [20, 30, 40])
    a = stratified_bootstrap_sums(values, strata, 4000, seed=7)
    assert np.array_equal(a, stratified_bootstrap_sums(values, strata, 4000, seed=7))
    assert not np.array_equal(a, stratified_bootstrap_sums(values, strata, 4000, seed=8))
    naive = _index_bootstrap(values, strata, 4000, np.random.default_rng(0))
    for j in range(3):  # same mean and spread per stratum, within sampling error of 4,000 draws
        assert a[:, j].mean() == pytest.approx(naive[:, j].mean(), abs=4 * naive[:, j].std() / np.sqrt(2000))
        assert a[:, j].std() == pytest.approx(naive[:, j].std(), rel=0.06)


def test_bootstrap_interval_covers_the_true_difference():
    """Synthetic pairs: A right with p=0.60, B with p=0.68, correlated; the 90% interval of B - A should
    hold the true 0.08 in about 90% of 300 simulated test sets."""
    rng = np.random.default_rng(0)
    covered = 0
    for trial in range(300):
        u = rng.random(400)
        a, b = (u < 0.60).astype(float), (u < 0.68).astype(float)
        flip = rng.random(400) < 0.2  # some independent noise so that both kinds of discordant pairs occur
        b[flip] = (rng.random(flip.sum()) < 0.68).astype(float)
        a[flip] = (rng.random(flip.sum()) < 0.60).astype(float)
        sums = stratified_bootstrap_sums(b - a, np.zeros(400), 1000, seed=trial)[:, 0] / 400
        lo, hi = np.quantile(sums, [0.05, 0.95])
        covered += lo <= 0.08 <= hi
    assert 0.84 <= covered / 300 <= 0.96, covered


def _pairs(verdicts: dict, field_of=lambda p: "syntax") -> list[dict]:
    return [{"id": f"{p}/{i}", "paradigm": p, "field": field_of(p), "correct": bool(v)}
            for p, vs in verdicts.items() for i, v in enumerate(vs)]


def test_blimp_is_resampled_within_paradigms_so_the_interval_is_of_the_mean_over_paradigms():
    # B gains every pair of paradigm x (10 pairs) and none of y (90 pairs): the mean over paradigms moves by
    # exactly 0.5 in every resample that keeps each paradigm's size; pooled resampling would move it
    a = _pairs({"x": [0] * 10, "y": [1] * 45 + [0] * 45})
    b = _pairs({"x": [1] * 10, "y": [1] * 45 + [0] * 45})
    out = compare_task("blimp", "minimal_pairs", [a], [b], resamples=2000, seed=0)
    mean = out["rows"][0]
    assert mean["metric"] == "mean over paradigms" and mean["difference"] == pytest.approx(0.5)
    assert mean["ci"] == pytest.approx([0.5, 0.5])
    assert (mean["a_only"], mean["b_only"]) == (0, 10) and mean["mcnemar_p"] == pytest.approx(2 * 0.5 ** 10)
    field = out["rows"][1]
    assert field["metric"] == "syntax" and field["difference"] == pytest.approx(0.1) and field["ci"] == [0.1, 0.1]
    assert [p["difference"] for p in out["paradigms"]] == [1.0, 0.0]


def test_seeds_are_averaged_per_item_and_mcnemar_takes_majority_votes():
    verdicts_a = [[1, 1, 0, 1], [1, 0, 0, 1], [1, 1, 1, 0]]  # 3 seeds x 4 items
    members_a = [[{"id": str(i), "correct": bool(v)} for i, v in enumerate(vs)] for vs in verdicts_a]
    members_b = [[{"id": str(i), "correct": bool(v)} for i, v in enumerate(vs)] for vs in ([0, 1, 1, 1], [0, 1, 1, 0])]
    row = compare_task("t", "items", members_a, members_b, resamples=500)["rows"][0]
    assert row["a"] == pytest.approx(np.mean([1, 2 / 3, 1 / 3, 2 / 3])) and row["b"] == pytest.approx(np.mean([0, 1, 1, .5]))
    # majority votes: A = right right wrong right, B = wrong right right (split): the split item is no vote
    assert (row["a_only"], row["b_only"], row["split_votes"]) == (1, 1, 1)


def _items_dir(path, records, name="blimp"):
    path.mkdir(parents=True, exist_ok=True)
    (path / f"{name}.items.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def test_items_that_differ_are_refused_in_one_line(tmp_path, one_line_error):
    a = _items_dir(tmp_path / "a", _pairs({"x": [1, 0, 1, 1]}))
    b = _items_dir(tmp_path / "b", _pairs({"x": [1, 0, 1], "y": [1, 1]}))
    one_line_error(["compare", str(a), str(b), "--paired"], "3 items differ", "1 only in the first", "same --limit")
    one_line_error(["compare", str(a), str(a), str(b), "--paired"], "two runs")
    one_line_error(["compare", str(a), str(a), "--paired", "--resamples", "0"], "--resamples 0")
    one_line_error(["compare", str(a), str(a), "--paired", "--confidence", "95"], "--confidence 95")
    one_line_error(["compare", str(a), str(tmp_path), "--paired"], "no per-item results")
    bad = _items_dir(tmp_path / "bad", [{"id": "x/0", "paradigm": "x", "field": "s", "correct": "yes"}])
    one_line_error(["compare", str(a), str(bad), "--paired"], "not a per-item result")


def test_a_seed_study_compares_seed_averaged(tmp_path, capsys):
    study = tmp_path / "study"
    for seed, vs in enumerate(([1, 1, 0, 0], [1, 0, 1, 0], [0, 0, 0, 0])):
        run = study / f"seed{seed}"
        _items_dir(run / "eval", _pairs({"x": vs}))
        (run / "summary.json").write_text("{}")
    other = _items_dir(tmp_path / "other", _pairs({"x": [1, 1, 1, 1]}))
    assert main(["compare", str(study), str(other), "--paired", "--json", "--resamples", "100"]) == 0
    out = json.loads(capsys.readouterr().out)
    row = out["tasks"]["blimp"]["rows"][0]
    assert out["tasks"]["blimp"]["seeds"] == [3, 1] and len(out["a"]["members"]) == 3
    assert row["a"] == pytest.approx(4 / 12) and row["difference"] == pytest.approx(8 / 12)
    assert "majority vote" in out["mcnemar"]
    assert (row["a_only"], row["b_only"]) == (0, 3)  # seed-majority of A: 1 0 0 0


@pytest.fixture(scope="module")
def two_checkpoints(trained_run, tmp_path_factory, fixtures):
    """The session's tiny run, evaluated at its step-4 checkpoint (eval/step-00000004/) and at its end
    (eval/) on all 5 BLiMP fixture paradigms and HellaSwag (12 pairs of each paradigm, 12 items)."""
    run = tmp_path_factory.mktemp("paired") / "run"
    shutil.copytree(trained_run, run)
    tasks = ["--blimp", str(fixtures / "blimp"), "--hellaswag", str(fixtures / "hellaswag" / "val-first30.txt"),
             "--limit", "12", "--quiet"]
    assert main(["eval", str(run / "checkpoints" / "step-00000004"), *tasks]) == 0
    assert main(["eval", str(run), *tasks]) == 0
    return run / "eval" / "step-00000004", run


def test_eval_writes_every_item_beside_the_summary(two_checkpoints):
    _, run = two_checkpoints
    blimp = [json.loads(line) for line in (run / "eval" / "blimp.items.jsonl").read_text().splitlines()]
    summary = json.loads((run / "eval" / "blimp.json").read_text())
    assert len(blimp) == summary["pairs"] == 60 and "per_item" not in summary
    assert blimp[0]["id"] == "adjunct_island_0" and len({r["id"] for r in blimp}) == 60
    first = blimp[0]
    assert (first["field"], first["linguistics_term"]) == ("syntax", "island_effects")
    assert all(r["correct"] == (r["logprob_good"] >= r["logprob_bad"]) for r in blimp)
    for name, p in summary["paradigms"].items():
        assert p["correct"] == sum(r["correct"] for r in blimp if r["paradigm"] == name)
    assert {r["field"] for r in blimp} == set(summary["fields"])  # syntax/semantics, spelled as the report does
    hs = [json.loads(line) for line in (run / "eval" / "hellaswag.items.jsonl").read_text().splitlines()]
    hs_summary = json.loads((run / "eval" / "hellaswag.json").read_text())
    assert [r["id"] for r in hs] == [str(i) for i in range(12)] and hs_summary["items"] == 12
    assert np.mean([r["correct"] for r in hs]) == pytest.approx(hs_summary["acc"])
    assert np.mean([r["correct_norm"] for r in hs]) == pytest.approx(hs_summary["acc_norm"])
    r = hs[0]
    assert r["gold"] == 3 and len(r["logprobs"]) == len(r["ending_chars"]) == len(r["ending_tokens"]) == 4
    assert r["prediction"] == int(np.argmax(r["logprobs"]))
    assert r["prediction_norm"] == int(np.argmax(np.array(r["logprobs"]) / r["ending_chars"]))


def test_compare_paired_end_to_end(two_checkpoints, capsys):
    early, run = two_checkpoints
    assert main(["compare", str(early), str(run), "--paired", "--json", "--resamples", "2000"]) == 0
    out = json.loads(capsys.readouterr().out)
    mean = out["tasks"]["blimp"]["rows"][0]
    a = json.loads((early / "blimp.json").read_text())
    b = json.loads((run / "eval" / "blimp.json").read_text())
    assert mean["difference"] == pytest.approx(b["mean"] - a["mean"])  # the numbers eval reported
    assert mean["ci"][0] <= mean["difference"] <= mean["ci"][1]
    fields = {r["metric"]: r for r in out["tasks"]["blimp"]["rows"][1:]}
    assert set(fields) == set(b["fields"])
    for f, r in fields.items():
        assert r["difference"] == pytest.approx(b["fields"][f]["accuracy"] - a["fields"][f]["accuracy"])
    hs = {r["metric"]: r for r in out["tasks"]["hellaswag"]["rows"]}
    ha, hb = (json.loads((d / "hellaswag.json").read_text()) for d in (early, run / "eval"))
    assert hs["acc_norm"]["difference"] == pytest.approx(hb["acc_norm"] - ha["acc_norm"])
    # b and c are counted from the items files themselves
    ia, ib = ([json.loads(x) for x in (d / "hellaswag.items.jsonl").read_text().splitlines()] for d in (early, run / "eval"))
    assert hs["acc"]["a_only"] == sum(x["correct"] and not y["correct"] for x, y in zip(ia, ib))
    assert hs["acc"]["mcnemar_p"] == mcnemar(hs["acc"]["a_only"], hs["acc"]["b_only"])
    again = main(["compare", str(early), str(run), "--paired", "--json", "--resamples", "2000"])
    assert again == 0 and json.loads(capsys.readouterr().out) == out  # seeded: the same interval again
    assert main(["compare", str(early), str(run), "--paired", "--resamples", "500"]) == 0
    table = capsys.readouterr().out
    assert "mean over paradigms" in table and "  morphology" in table and "acc_norm" in table and "95% CI" in table
