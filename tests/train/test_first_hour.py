"""What a new user trips over in the first hour (issue 22): wall time over sessions."""

import json

from tinylm.runs.execute import execute
from tinylm.train.recipe import load_recipe


def stop_at(step):
    def on_step(run, record):
        if run.step == step:
            run.stop_requested = True
    return on_step


# ------------------------------------------------------------------ 4. wall time over sessions
def test_wall_time_adds_up_over_sessions_and_a_rerun_keeps_it(tiny_recipe, tmp_path):
    import time

    recipe = load_recipe(str(tiny_recipe(train={"duration": "20 steps"}, eval={"every": 0})))
    out = tmp_path / "run"

    def slow_then_stop(run, record):
        if run.step == 5:
            time.sleep(0.6)
            run.stop_requested = True

    first = execute(recipe, out, on_step=slow_then_stop)
    assert first["wall_s"] == first["session_wall_s"] >= 0.6
    second = execute(recipe, out, resume=True)
    assert second["complete"]
    assert second["wall_s"] >= second["session_wall_s"] + 0.6  # the first session is carried in the checkpoint
    assert second["wall_s"] <= first["wall_s"] + second["session_wall_s"] + 0.05
    again = execute(recipe, out, resume=True)  # complete: nothing to train
    on_disk = json.loads((out / "summary.json").read_text())
    assert (again["wall_s"], again["session_wall_s"]) == (second["wall_s"], second["session_wall_s"])
    assert (on_disk["wall_s"], on_disk["session_wall_s"]) == (second["wall_s"], second["session_wall_s"])
