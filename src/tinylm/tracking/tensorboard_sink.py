"""TensorBoard: event files in RUN/tensorboard, written by torch's `SummaryWriter`.

Scalars are tagged as in `metrics.jsonl` (`loss`, `val_loss`, `lr`, `tokens_per_s`, ...) at their step;
an event is the scalar `events/<name>` = 1 at its step (a spike on the curve where the sleep, reset or
growth happened) and its whole line as text under `events`. The resolved recipe goes in as hyperparameters
(the HParams tab) and as text (`config`).

A resumed run opens the writer with `purge_step` one past the checkpoint's step: TensorBoard then drops
what the interrupted session wrote after it, which the resumed one writes again, so no step is doubled.
Lines at the checkpoint's own step were written before the checkpoint and are not redone, so they stay.
"""

from __future__ import annotations

import json
from pathlib import Path

from tinylm.optional import require
from tinylm.tracking.records import event_tag

DIRECTORY = "tensorboard"


def open_sink(run_dir: Path, run_name: str, hparams: dict, resume_step: int | None):
    return TensorBoardSink(Path(run_dir) / DIRECTORY, hparams, resume_step)


class TensorBoardSink:
    name = "tensorboard"

    def __init__(self, directory: Path, hparams: dict, resume_step: int | None):
        require("tensorboard", "log: [tensorboard]")
        from torch.utils.tensorboard import SummaryWriter
        from torch.utils.tensorboard.summary import hparams as hparams_summary

        step = resume_step or 0
        self.writer = SummaryWriter(str(directory), purge_step=step + 1 if resume_step else None)
        for summary in hparams_summary(hparams, {}):  # the HParams tab, in this run's own event file
            self.writer.file_writer.add_summary(summary, step)
        table = "\n".join(f"| {k} | {v} |" for k, v in hparams.items())
        self.writer.add_text("config", "| key | value |\n|---|---|\n" + table, step)

    def log(self, step: int, values: dict[str, float]) -> None:
        for key, value in values.items():
            self.writer.add_scalar(key, value, step)

    def event(self, step: int, name: str, record: dict) -> None:
        self.writer.add_scalar(event_tag(name), 1.0, step)
        self.writer.add_text("events", json.dumps(record), step)

    def close(self, status: str) -> None:
        self.writer.close()
