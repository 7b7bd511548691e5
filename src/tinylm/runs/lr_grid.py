"""A learning rate for each arm, chosen on validation items carved from the train half.

One learning rate for both arms compares a pretrained model at the rate tuned for a model from scratch
(or the reverse): on tiny models pretraining then "lowers" accuracy, and that is the rate, not the
pretraining. So ``--lr-grid`` fine-tunes each arm once per rate on nine tenths of the train items
(fine-tuning seed 0), scores the other tenth (a tenth of every label, ``carve_validation``), and the
arm's seeds then train on the whole train half at the rate that scored best (the smaller on a tie).
The test half is never looked at while choosing.
"""

from __future__ import annotations

from dataclasses import replace

from tinylm.data.tasks import carve_validation
from tinylm.errors import UserError
from tinylm.runs.finetune import Base, TaskData, fit
from tinylm.train.finetune import FinetuneConfig, accuracy, predict_logits

SELECTION_SEED = 0  # the fine-tuning seed every rate is tried with


def parse_lr_grid(text: str) -> list[float]:
    """``"1e-4,3e-4,1e-3"`` -> [1e-4, 3e-4, 1e-3] (sorted, distinct, each > 0)."""
    try:
        values = sorted({float(v) for v in str(text).replace(" ", "").split(",") if v})
    except ValueError:
        raise UserError(f"--lr-grid {text!r} is not a comma-separated list of learning rates, e.g. "
                        "--lr-grid 1e-4,3e-4,1e-3") from None
    if len(values) < 2 or min(values) <= 0:
        raise UserError(f"--lr-grid needs at least two learning rates above 0, got {text!r}")
    return values


def choose_lr(base: Base, data: TaskData, cfg: FinetuneConfig, grid: list[float], scratch: bool,
              on_try=None) -> dict:
    """{"chosen", "validation_accuracy" {lr: acc}, "fit_items", "validation_items"} for one arm."""
    fit_idx, val_idx = carve_validation(data.task, data.split.train, data.spec.split_seed)
    fit_set, val_set = data.encode(fit_idx), data.encode(val_idx)
    scores = {}
    for lr in grid:
        model, _ = fit(base, fit_set, data.task.n_labels, replace(cfg, lr=lr), SELECTION_SEED, scratch,
                       on_try(lr) if on_try else None)
        scores[lr] = accuracy(predict_logits(model, val_set[0], val_set[1], cfg.eval_batch_size), val_set[2])
    chosen = max(grid, key=lambda lr: (scores[lr], -lr))
    return {"chosen": chosen, "validation_accuracy": {f"{lr:g}": scores[lr] for lr in grid},
            "fit_items": len(fit_idx), "validation_items": len(val_idx), "selection_seed": SELECTION_SEED}
