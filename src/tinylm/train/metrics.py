"""`metrics.jsonl`: one JSON line per log step and per event, appended as training goes.

A crash mid-write can leave its last line half written: readers drop it (`rundir.metrics.read_metrics`),
and a resume rewrites the file without it. Each checkpoint records how many lines were written when it
was saved (`lines`), so a resume keeps exactly those: an event logged after a checkpoint at that same
step (forget's reinit, grow's phase at a step start, the final evaluation) is not kept and then logged again.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
from pathlib import Path

from tinylm.disk_space import is_no_space, no_space

from tinylm.rundir.metrics import read_metrics


def _clean(value):
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # JSON has no NaN; keep it visible
    return value


class MetricsLog:
    def __init__(self, path: Path | None):
        self.path = path
        self.last: dict = {}
        self.last_log: dict = {}  # the last log-step record (loss, lr, ...): the summary's `loss` on a resume
        self.lines = 0            # lines this run's metrics.jsonl holds (checkpoints record it)
        self.trackers = None      # tinylm.tracking's fan-out (`log:`): each line once it is in the file
        self._file = None

    def write(self, record: dict) -> None:
        record = {k: _clean(v) for k, v in record.items()}
        if "event" not in record:
            self.last = record
            if "loss" in record:
                self.last_log = record
        if self.path is None:
            return
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.path, "ab", buffering=0)  # each line reaches the file whole, at once
        line = (json.dumps(record) + "\n").encode()
        end = os.fstat(self._file.fileno()).st_size
        try:
            _write(self._file, line)
        except OSError as e:  # a full disk: cut the line's written part off again, so no torn line is left
            with contextlib.suppress(OSError):
                os.ftruncate(self._file.fileno(), end)
            if is_no_space(e):
                raise no_space(self.path, len(line), f"`tinylm train --out {self.path.parent} --resume` continues "
                               "from the last checkpoint") from e
            raise
        self.lines += 1
        if self.trackers is not None:  # after the file: a tracker's failure cannot cost the line
            self.trackers.write(record)

    def truncate_after(self, step: int, lines: int | None = None) -> list[dict]:
        """On resume: drop lines written after the checkpoint we resume from (they will be redone); returns
        the records kept. `lines`: the count the checkpoint recorded (exact); without it (a checkpoint
        written before it was kept), the lines of later steps."""
        if self.path is None or not self.path.exists():
            return []
        self.close()  # the file is replaced: a handle kept open would write into the old one
        records = read_metrics(self.path)
        if lines is not None:
            kept = records[:lines]
        else:
            kept = [r for r in records if not isinstance(r.get("step", 0), (int, float)) or r.get("step", 0) <= step]
        self.lines = len(kept)
        self.last_log = next((r for r in reversed(kept) if "event" not in r and "loss" in r), {})
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text("".join(json.dumps(r) + "\n" for r in kept))
        tmp.replace(self.path)
        return kept

    def close(self) -> None:
        if self._file:
            self._file.close()
            self._file = None


def _write(file, data: bytes) -> None:
    """All of `data` (an unbuffered write may take part of it)."""
    view = memoryview(data)
    while view:
        view = view[file.write(view):]

