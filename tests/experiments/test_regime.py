"""The ladders that choose an experiment's regime (experiments/regime.py), and the property the flat-point
ladder stands on: at a constant rate, the first N steps of a longer run are exactly an N-step run."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "experiments"))
import regime  # noqa: E402


def curve(values: dict[int, float]) -> list[tuple[int, float]]:
    return sorted(values.items())


def test_the_flat_point_is_the_first_rung_whose_doubling_gains_less_than_delta():
    points = curve({100: 5.0, 200: 4.5, 400: 4.2, 800: 4.17, 1600: 4.16})
    r = regime.flat_point(points, 100, 0.05)
    assert r["n"] == 400 and r["reached"]
    assert [x["n"] for x in r["rungs"]] == [100, 200, 400, 800]
    assert r["rungs"][1]["drop"] == pytest.approx(0.3)


def test_a_curve_that_never_flattens_gives_its_last_rung_marked_not_reached():
    r = regime.flat_point(curve({100: 5.0, 200: 4.5, 400: 4.0, 800: 3.5}), 100, 0.05)
    assert r["n"] == 400 and not r["reached"]


def test_rungs_between_evaluations_are_read_on_the_line_between_them():
    r = regime.doubling_rungs(curve({0: 6.0, 150: 5.0, 300: 4.0}), 150)
    assert r == [{"n": 150, "val_loss": 5.0, "val_loss_doubled": 4.0, "drop": 1.0}]
    assert regime.doubling_rungs(curve({0: 6.0, 100: 5.0, 300: 4.0}), 150)[0]["val_loss"] == pytest.approx(4.75)


def test_a_curve_too_short_for_one_doubling_is_refused():
    with pytest.raises(ValueError, match="at least 400"):
        regime.flat_point(curve({100: 5.0, 200: 4.9}), 200, 0.05)


def test_the_best_length_is_the_lowest_final_loss_and_says_when_it_sits_at_an_edge():
    inside = regime.best_length({150: 4.86, 300: 4.37, 600: 4.39, 1200: 5.05})
    assert inside["n"] == 300 and not inside["at_edge"]
    assert regime.best_length({150: 4.86, 300: 4.5, 600: 4.39})["at_edge"]


@pytest.mark.slow
def test_the_first_steps_of_a_longer_constant_rate_run_are_the_shorter_run(tmp_path, tiny_recipe):
    from tinylm.runs.execute import execute
    from tinylm.train.recipe import load_recipe

    def run(steps: int, every: int) -> dict:
        path = tiny_recipe(name=f"c{steps}", train={"duration": f"{steps} steps", "schedule": "constant",
                                                    "warmup": 0}, eval={"every": every},
                           checkpoint={"every": 0})
        out = tmp_path / f"run{steps}"
        execute(load_recipe(path), out)
        return {r["step"]: r["val_loss"] for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines())
                if "val_loss" in r}

    short, long = run(12, 6), run(24, 4)
    assert short[12] == long[12]  # bitwise: the ladder reads a shorter run off the longer one
