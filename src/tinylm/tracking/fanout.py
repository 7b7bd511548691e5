"""The fan-out: one `metrics.jsonl` record to every open sink, a failing sink warned about once and dropped.

`MetricsLog.write` calls `write` after the line is in `metrics.jsonl`, so nothing a sink does can lose
it. A sink raising mid-run is closed and left out from then on (one warning naming it and its error):
the run goes on, and the file still holds every value the sink missed.
"""

from __future__ import annotations

import logging

from tinylm.tracking.records import scalars

log = logging.getLogger(__name__)


class Trackers:
    def __init__(self, sinks: list):
        self.sinks = list(sinks)
        self._step, self._sent = None, set()  # the keys sent at the latest step

    def write(self, record: dict) -> None:
        step = int(record.get("step", 0))
        event = record.get("event")
        values = None if event else self._new_at_step(step, scalars(record))
        for sink in list(self.sinks):
            try:
                if event:
                    sink.event(step, str(event), record)
                else:
                    sink.log(step, values)
            except Exception as e:  # noqa: BLE001 (any library error: the run must go on)
                self._drop(sink, e)

    def _new_at_step(self, step: int, values: dict) -> dict:
        """An evaluation's line repeats its step's `tokens` and `flops`: each key goes once per step."""
        if step != self._step:
            self._step, self._sent = step, set()
        values = {k: v for k, v in values.items() if k not in self._sent}
        self._sent.update(values)
        return values

    def close(self, status: str = "finished") -> None:
        """`status`: finished (the run ended), interrupted (stopped, resumable) or failed."""
        for sink in self.sinks:
            try:
                sink.close(status)
            except Exception as e:  # noqa: BLE001
                log.warning("tracker %s could not close (%s: %s); metrics.jsonl has every value",
                            sink.name, type(e).__name__, e)
        self.sinks = []

    def _drop(self, sink, error: Exception) -> None:
        log.warning("tracker %s failed (%s: %s) and is dropped for the rest of this session; training goes on "
                    "and metrics.jsonl keeps every value", sink.name, type(error).__name__, error)
        self.sinks.remove(sink)
        try:
            sink.close("failed")
        except Exception:  # noqa: BLE001 (already broken: the warning above said so)
            pass
