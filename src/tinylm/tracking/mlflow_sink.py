"""MLflow: a run in a local store at RUN/mlruns, unless `MLFLOW_TRACKING_URI` names another (a server, a
database); the experiment is `MLFLOW_EXPERIMENT_NAME` or `tinylm`, the run's name the recipe's.

Scalars are metrics at their step; an event is the metric `events/<name>` = 1 at its step. The resolved
recipe is the run's params. The local store is MLflow's file store, which MLflow 3 keeps in maintenance
mode behind `MLFLOW_ALLOW_FILE_STORE=true`: tinylm sets that variable for its own default store only
(reading it with `mlflow ui --backend-store-uri RUN/mlruns` wants it set too). A database store cost
seconds to create and ~80 ms a write here, the file store ~7 ms.

The run's id is kept in RUN/trackers.json, and a resumed run logs into the same run. MLflow appends
every value it is given, so on resume the steps each metric already has are not sent again (they are
the steps the resumed run redoes after its checkpoint, the same values); params already there stay
as they were (MLflow refuses to change one: a `--force` change of the recipe shows in config.yaml).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from tinylm.optional import require
from tinylm.tracking.records import event_tag
from tinylm.tracking.run_ids import store_id, stored_id

DIRECTORY = "mlruns"
STATUS = {"finished": "FINISHED", "interrupted": "KILLED", "failed": "FAILED"}
MAX_PARAM = 6000  # characters of a param's value MLflow takes


def open_sink(run_dir: Path, run_name: str, hparams: dict, resume_step: int | None):
    return MlflowSink(Path(run_dir), run_name, hparams)


def tracking_uri(run_dir: Path) -> str:
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        return uri
    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    return (Path(run_dir) / DIRECTORY).resolve().as_uri()


class MlflowSink:
    name = "mlflow"

    def __init__(self, run_dir: Path, run_name: str, hparams: dict):
        self.entities = require("mlflow.entities", "log: [mlflow]")
        Param = self.entities.Param
        self.client = require("mlflow.tracking", "log: [mlflow]").MlflowClient(tracking_uri=tracking_uri(run_dir))
        name = os.environ.get("MLFLOW_EXPERIMENT_NAME", "tinylm")
        experiment = self.client.get_experiment_by_name(name)
        experiment_id = experiment.experiment_id if experiment else self.client.create_experiment(name)
        run_id = stored_id(run_dir, "mlflow")
        self.logged: dict[str, int] = {}  # metric -> the last step the run already has (a resumed run)
        existing = {}
        if run_id is not None:
            run = self.client.get_run(run_id)
            existing = run.data.params
            for key in run.data.metrics:
                self.logged[key] = max(m.step for m in self.client.get_metric_history(run_id, key))
            self.client.update_run(run_id, status="RUNNING")
        else:
            run_id = self.client.create_run(experiment_id, run_name=run_name).info.run_id
            store_id(run_dir, "mlflow", run_id)
        self.run_id = run_id
        params = [Param(k, str(v)[:MAX_PARAM]) for k, v in hparams.items() if k not in existing]
        for i in range(0, len(params), 100):  # MLflow takes at most 100 params a batch
            self.client.log_batch(run_id, params=params[i:i + 100])

    def log(self, step: int, values: dict[str, float]) -> None:
        now = int(time.time() * 1000)
        metrics = [self.entities.Metric(k, v, now, step) for k, v in values.items() if step > self.logged.get(k, -1)]
        if metrics:
            self.client.log_batch(self.run_id, metrics=metrics)

    def event(self, step: int, name: str, record: dict) -> None:
        self.log(step, {event_tag(name): 1.0})

    def close(self, status: str) -> None:
        self.client.set_terminated(self.run_id, STATUS.get(status, "FAILED"))
