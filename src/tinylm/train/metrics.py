"""`metrics.jsonl`: one JSON line per log step and per event, appended as training goes."""

from __future__ import annotations

import json
import math
from pathlib import Path


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
        kept = [line for line in self.path.read_text().splitlines()
                if line.strip() and json.loads(line).get("step", 0) <= step]
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text("".join(line + "\n" for line in kept))
        tmp.replace(self.path)

    def close(self) -> None:
        if self._file:
            self._file.close()
            self._file = None


def read_metrics(path: Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
