"""`RUN/trackers.json`: the id each tracker gave this run, so that a resumed run goes on logging into the
same W&B run and MLflow run rather than starting a second one beside it."""

from __future__ import annotations

from pathlib import Path

from tinylm.rundir.files import read_json
from tinylm.rundir.serialize import write_json

FILE = "trackers.json"


def stored_id(run_dir: Path, sink: str) -> str | None:
    value = _ids(Path(run_dir) / FILE).get(sink)
    return str(value) if value else None


def store_id(run_dir: Path, sink: str, run_id: str) -> None:
    path = Path(run_dir) / FILE
    write_json(path, {**_ids(path), sink: run_id})


def _ids(path: Path) -> dict:
    return read_json(path, "it holds the trackers' run ids: delete it to start new tracker runs") if path.exists() else {}
