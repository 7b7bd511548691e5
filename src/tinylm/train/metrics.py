"""`metrics.jsonl`: one JSON line per log step and per event, appended as training goes.

A crash mid-write can leave its last line half written: readers drop it (`rundir.files.read_jsonl`),
and a resume rewrites the file without it.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from tinylm.rundir.files import read_jsonl

_FIX = ("a line before the last is damaged, which no crash leaves: restore the file from a copy, or delete the "
        "damaged lines")


def _clean(value):
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # JSON has no NaN; keep it visible
    return value


class MetricsLog:
    def __init__(self, path: Path | None):
        self.path = path
        self.last: dict = {}
        self._file = None

    def write(self, record: dict) -> None:
        record = {k: _clean(v) for k, v in record.items()}
        if "event" not in record:
            self.last = record
        if self.path is None:
            return
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.path, "a", buffering=1)
        self._file.write(json.dumps(record) + "\n")

    def truncate_after(self, step: int) -> None:
        """On resume: drop lines written after the checkpoint we resume from (they will be redone)."""
        if self.path is None or not self.path.exists():
            return
        kept = [r for r in read_metrics(self.path) if not isinstance(r.get("step", 0), (int, float))
                or r.get("step", 0) <= step]
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text("".join(json.dumps(r) + "\n" for r in kept))
        tmp.replace(self.path)

    def close(self) -> None:
        if self._file:
            self._file.close()
            self._file = None


def read_metrics(path: Path) -> list[dict]:
    """The records of a metrics.jsonl; a torn last line (a crash mid-write) is dropped."""
    return read_jsonl(Path(path), _FIX)
