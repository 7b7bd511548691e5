"""Weights & Biases: a run whose files go to RUN/wandb (W&B's `dir`), online or offline as W&B is set up.

`WANDB_MODE=offline` needs no account and no network (`wandb sync RUN/wandb/offline-run-*` uploads it
later); W&B's own variables (`WANDB_PROJECT`, `WANDB_ENTITY`, `WANDB_DIR`, ...) are honoured, the project
defaulting to `tinylm` and the run's name to the recipe's. Scalars are logged at their step; an event as
`events/<name>` = 1 at its step. The resolved recipe is the run's config.

The run's id is kept in RUN/trackers.json and a resumed run reopens it (`resume="allow"`). W&B keeps one
value per step and refuses steps below the last it has: the steps a resumed run redoes after its
checkpoint are the ones already there, and tinylm's resume is exact, so they hold the same losses.
W&B's console capture is off: tinylm's progress bar is not W&B's to record.
"""

from __future__ import annotations

import os
from pathlib import Path

from tinylm.optional import require
from tinylm.tracking.records import event_tag
from tinylm.tracking.run_ids import store_id, stored_id

EXIT_CODES = {"finished": 0, "interrupted": 130, "failed": 1}


def open_sink(run_dir: Path, run_name: str, hparams: dict, resume_step: int | None):
    return WandbSink(Path(run_dir), run_name, hparams)


class WandbSink:
    name = "wandb"

    def __init__(self, run_dir: Path, run_name: str, hparams: dict):
        wandb = require("wandb", "log: [wandb]")
        directory = Path(os.environ.get("WANDB_DIR") or run_dir)  # W&B writes DIR/wandb/<run>/
        directory.mkdir(parents=True, exist_ok=True)
        self.run = wandb.init(project=os.environ.get("WANDB_PROJECT", "tinylm"), name=run_name,
                              id=stored_id(run_dir, "wandb"),  # None: W&B draws a new one
                              resume="allow", dir=str(directory), config=hparams, reinit="create_new",
                              settings=wandb.Settings(console="off"))
        store_id(run_dir, "wandb", self.run.id)

    def log(self, step: int, values: dict[str, float]) -> None:
        self.run.log(values, step=step)

    def event(self, step: int, name: str, record: dict) -> None:
        self.run.log({event_tag(name): 1.0}, step=step)

    def close(self, status: str) -> None:
        self.run.finish(exit_code=EXIT_CODES.get(status, 1))
