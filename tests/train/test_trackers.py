"""`log: [tensorboard, wandb, mlflow]`: every metrics.jsonl line reaches each tracker, read back with the
tracker's own reader and compared value for value with the file (all steps, events included).

One module run (12 steps, a log line every 2, forget's reset every 4, evals every 4) feeds all three
trackers; the other tests are about the edges: a bad name, a missing package, a failing tracker, resume.
W&B runs offline (no network, no account) throughout.
"""

import importlib.util
import json
import math
import struct
from pathlib import Path

import pytest

from tinylm.rundir.metrics import read_metrics

pytestmark = pytest.mark.skipif(  # found, not imported: collecting the suite must not pay for importing them
    not all(importlib.util.find_spec(p) for p in ("tensorboard", "wandb", "mlflow")),
    reason="needs the trackers' packages: pip install 'tinylm[tensorboard,wandb,mlflow]'")

STEPS = 12


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    for key, value in {"WANDB_MODE": "offline", "WANDB_SILENT": "true", "WANDB_DISABLE_CODE": "true",
                       "WANDB_DISABLE_GIT": "true", "WANDB_X_DISABLE_STATS": "true"}.items():
        monkeypatch.setenv(key, value)
    for key in ("WANDB_DIR", "WANDB_PROJECT", "MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME"):
        monkeypatch.delenv(key, raising=False)


def _recipe(tiny_store, log, **train):
    from tinylm.train.recipe import recipe_from_dict

    return recipe_from_dict({
        "name": "tracked", "data": {"store": str(tiny_store), "seq_len": 16, "sampler": "windows"},
        "model": {"name": "L1-2-16x2", "flavour": "llama"},
        "train": {"duration": f"{STEPS} steps", "batch_size": 2, "lr": 3e-3, "log_every": 2, "precision": "fp32",
                  **train},
        "eval": {"every": 4, "windows": 2, "batch_size": 2}, "checkpoint": {"every": 4, "keep": 3},
        "methods": [{"forget": {"every": 4}}], "log": log})


@pytest.fixture(scope="module")
def tracked_run(tmp_path_factory, tiny_store):
    """One run into all three trackers; its directory."""
    mp = pytest.MonkeyPatch()
    mp.setenv("WANDB_MODE", "offline")
    mp.setenv("WANDB_SILENT", "true")
    mp.setenv("WANDB_X_DISABLE_STATS", "true")
    mp.delenv("MLFLOW_TRACKING_URI", raising=False)
    from tinylm.runs.execute import execute

    out = tmp_path_factory.mktemp("tracked") / "run"
    try:
        execute(_recipe(tiny_store, ["tensorboard", "wandb", "mlflow"]), out)
    finally:
        mp.undo()
    return out


def _expected(run: Path) -> tuple[dict, dict]:
    """From metrics.jsonl: {tag: {step: value}} of every number, and {events/<name>: {steps}}."""
    values, events = {}, {}
    for record in read_metrics(run / "metrics.jsonl"):
        if "event" in record:
            events.setdefault(f"events/{record['event']}", set()).add(record["step"])
            continue
        for key, value in record.items():
            if key != "step" and isinstance(value, (int, float)) and not isinstance(value, bool):
                values.setdefault(key, {})[record["step"]] = value
    assert {"loss", "val_loss", "lr", "tokens_per_s", "grad_norm", "tokens"} <= set(values)
    return values, events


def _tensorboard(directory: Path) -> dict:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(directory), size_guidance={"scalars": 0, "tensors": 0})
    acc.Reload()
    return acc


def test_tensorboard_holds_every_line_of_metrics_jsonl(tracked_run):
    values, events = _expected(tracked_run)
    acc = _tensorboard(tracked_run / "tensorboard")
    assert {"loss", "val_loss", "lr", "tokens_per_s", "grad_norm"} <= set(values)
    for tag, by_step in values.items():
        got = [(e.step, e.value) for e in acc.Scalars(tag)]
        assert [s for s, _ in got] == sorted(by_step), tag  # each step once
        for step, value in got:
            assert value == pytest.approx(by_step[step], rel=1e-6), (tag, step)
    assert "events/reinit" in events and len(events["events/reinit"]) >= 2
    for tag, steps in events.items():
        assert {e.step for e in acc.Scalars(tag)} == steps, tag
        assert all(e.value == 1.0 for e in acc.Scalars(tag))


def test_tensorboard_has_the_recipe_as_hyperparameters(tracked_run):
    from tensorboard.plugins.hparams import plugin_data_pb2

    acc = _tensorboard(tracked_run / "tensorboard")
    content = acc.PluginTagToContent("hparams")
    session = next(plugin_data_pb2.HParamsPluginData.FromString(c) for c in content.values()
                   if plugin_data_pb2.HParamsPluginData.FromString(c).HasField("session_start_info"))
    hparams = session.session_start_info.hparams
    assert hparams["train.lr"].number_value == pytest.approx(3e-3)
    assert hparams["model.name"].string_value == "L1-2-16x2"
    assert hparams["methods.0.forget.every"].number_value == 4


def _wandb_history(run: Path) -> tuple[dict, dict, list]:
    """{key: {step: value}}, the run's config and the run ids, from the offline runs' .wandb files, read with
    W&B's own record format (wandb.proto) out of the LevelDB-style log W&B writes them in."""
    from wandb.proto import wandb_internal_pb2 as pb

    history, config, ids = {}, {}, []
    for path in sorted(run.glob("wandb/offline-run-*/run-*.wandb")):
        for data in _leveldb_records(path.read_bytes()):
            record = pb.Record.FromString(data)
            kind = record.WhichOneof("record_type")
            if kind == "history":
                step = record.history.step.num
                for item in record.history.item:
                    key = item.key or "/".join(item.nested_key)
                    if not key.startswith("_"):
                        history.setdefault(key, {}).setdefault(step, []).append(json.loads(item.value_json))
            elif kind == "run":  # the config given to wandb.init comes with the run
                ids.append(record.run.run_id)
                config.update({item.key: json.loads(item.value_json) for item in record.run.config.update})
    return history, config, ids


def _leveldb_records(data: bytes):
    """W&B's `.wandb` framing: a 7-byte header, then LevelDB log records (crc32c, length, type) in 32 KiB
    blocks; a record spanning blocks is FIRST, MIDDLE..., LAST."""
    assert data[:4] == b":W&B", data[:8]
    pos, block, parts = 7, 32768, b""
    while pos + 7 <= len(data):
        left = block - pos % block
        if left < 7:
            pos += left
            continue
        _, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        if length == 0 and kind == 0:
            pos += left
            continue
        chunk = data[pos + 7:pos + 7 + length]
        pos += 7 + length
        parts += chunk
        if kind in (1, 4):  # FULL, LAST
            yield parts
            parts = b""


def test_wandb_offline_run_holds_every_line_of_metrics_jsonl(tracked_run):
    values, events = _expected(tracked_run)
    history, config, ids = _wandb_history(tracked_run)
    assert ids and set(ids) == {json.loads((tracked_run / "trackers.json").read_text())["wandb"]}
    for tag, by_step in values.items():
        got = history[tag]
        assert set(got) == set(by_step) and all(len(v) == 1 for v in got.values()), tag  # each step once
        for step, logged in got.items():
            assert logged[-1] == pytest.approx(by_step[step], rel=1e-6), (tag, step)
    for tag, steps in events.items():
        assert set(history[tag]) == steps, tag
    assert config["train.lr"] == pytest.approx(3e-3)
    assert config["methods.0.forget.every"] == 4 and config["model.name"] == "L1-2-16x2"


def test_mlflow_run_holds_every_line_of_metrics_jsonl(tracked_run):
    from mlflow.tracking import MlflowClient

    values, events = _expected(tracked_run)
    client = MlflowClient(tracking_uri=(tracked_run / "mlruns").resolve().as_uri())
    run_id = json.loads((tracked_run / "trackers.json").read_text())["mlflow"]
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED" and run.info.run_name == "tracked"
    assert run.data.params["train.lr"] == "0.003" and run.data.params["methods.0.forget.every"] == "4"
    for tag, by_step in values.items():
        history = client.get_metric_history(run_id, tag)
        assert sorted(m.step for m in history) == sorted(by_step), tag  # each step once
        for m in history:
            assert m.value == pytest.approx(by_step[m.step], rel=1e-6) or (
                math.isnan(m.value) and math.isnan(by_step[m.step])), (tag, m.step)
    for tag, steps in events.items():
        assert {m.step for m in client.get_metric_history(run_id, tag)} == steps, tag


def test_an_unknown_tracker_is_one_line_and_nothing_is_created(tiny_recipe, tmp_path, one_line_error):
    out = tmp_path / "run"
    one_line_error(["train", str(tiny_recipe(log=["tensorbord"])), "--out", str(out)],
                   "unknown tracker 'tensorbord'", "tensorboard, wandb, mlflow")
    one_line_error(["train", str(tiny_recipe()), "--out", str(out), "--log", "tensorboard,neptune"],
                   "--log tensorboard,neptune", "unknown tracker 'neptune'")
    assert not out.exists()


@pytest.mark.parametrize("package", ["tensorboard", "wandb", "mlflow"])
def test_a_tracker_without_its_package_is_one_line_naming_the_extra(package, tiny_recipe, tmp_path, monkeypatch,
                                                                    one_line_error):
    import sys

    monkeypatch.setitem(sys.modules, package, None)  # `import package` raises ImportError
    out = tmp_path / "run"
    one_line_error(["train", str(tiny_recipe()), "--out", str(out), "--log", package],
                   f"log: [{package}] needs {package}, which is not installed: pip install 'tinylm[{package}]'")
    assert not out.exists()


def test_a_tracker_failing_mid_run_is_dropped_with_one_warning_and_the_run_goes_on(tiny_store, tmp_path,
                                                                                   monkeypatch, caplog):
    from tinylm.runs.execute import execute
    from tinylm.tracking.tensorboard_sink import TensorBoardSink

    calls = []

    def broken(self, step, values):
        calls.append(step)
        raise OSError("disk full")

    monkeypatch.setattr(TensorBoardSink, "log", broken)
    summary = execute(_recipe(tiny_store, ["tensorboard"]), tmp_path / "run")
    assert summary["complete"] and calls == [2]  # tried once, then dropped
    warnings = [r for r in caplog.records if "tracker tensorboard failed" in r.getMessage()]
    assert len(warnings) == 1 and "disk full" in warnings[0].getMessage()
    lines = read_metrics(tmp_path / "run" / "metrics.jsonl")
    assert [r["step"] for r in lines if "loss" in r and "event" not in r] == list(range(2, STEPS + 1, 2))


def test_a_resumed_run_logs_into_the_same_trackers_without_doubling_steps(tiny_store, tmp_path):
    """Killed at step 7 (after the checkpoint at 4 and the log lines of 6), resumed from 4: TensorBoard purges
    what it had past step 4 and MLflow is not sent steps it has, so each step is there once, as in the file."""
    from mlflow.tracking import MlflowClient

    from tinylm.runs.execute import execute

    out = tmp_path / "run"
    recipe = _recipe(tiny_store, ["tensorboard", "mlflow"])

    def crash(run, record):
        if run.step == 7:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        execute(recipe, out, on_step=crash)
    ids = json.loads((out / "trackers.json").read_text())
    execute(recipe, out, resume=True)
    assert json.loads((out / "trackers.json").read_text()) == ids
    values, events = _expected(out)
    acc = _tensorboard(out / "tensorboard")
    client = MlflowClient(tracking_uri=(out / "mlruns").resolve().as_uri())
    for tag in ("loss", "val_loss", "lr"):
        assert [e.step for e in acc.Scalars(tag)] == sorted(values[tag]), tag
        assert sorted(m.step for m in client.get_metric_history(ids["mlflow"], tag)) == sorted(values[tag]), tag
        for e in acc.Scalars(tag):
            assert e.value == pytest.approx(values[tag][e.step], rel=1e-6), (tag, e.step)
    assert sorted(m.step for m in client.get_metric_history(ids["mlflow"], "events/reinit")) == sorted(
        events["events/reinit"])
    assert len(client.search_runs([client.get_run(ids["mlflow"]).info.experiment_id])) == 1


def test_log_option_adds_to_the_recipes_trackers_and_a_resume_may_change_them_without_force():
    from tinylm.cli.train import _with_trackers
    from tinylm.train.recipe import Recipe, recipe_changes

    recipe = Recipe(log=["mlflow"])
    assert _with_trackers(recipe, None).log == ["mlflow"]
    assert _with_trackers(recipe, "tensorboard,mlflow").log == ["mlflow", "tensorboard"]
    assert _with_trackers(recipe, "none").log == []
    assert recipe_changes(Recipe().to_dict(), Recipe(log=["wandb"]).to_dict()) == []


def test_each_seed_has_its_own_trackers(tiny_store, tmp_path):
    from tinylm.runs.seeds import train_seeds

    base = _recipe(tiny_store, ["tensorboard"], duration="6 steps").to_dict()
    train_seeds(base, tmp_path / "study", [0, 1])
    losses = []
    for seed in (0, 1):
        acc = _tensorboard(tmp_path / "study" / f"seed{seed}" / "tensorboard")
        expected, _ = _expected(tmp_path / "study" / f"seed{seed}")
        assert [(e.step, pytest.approx(e.value)) for e in acc.Scalars("loss")] == sorted(expected["loss"].items())
        losses.append(expected["loss"][6])
    assert losses[0] != losses[1]
