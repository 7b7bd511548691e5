"""Non-finite training: a loss or gradient norm that became NaN or inf never ends as a "finished" run.

The loop hands every step's loss and gradient norm to a `NonFiniteGuard`, which notes on the device (no host
sync) the first step where either stopped being finite. At each point where the loop syncs anyway (a log
step, an evaluation, a checkpoint, the end) it asks `diverged()`, so no non-finite weights are ever evaluated
as a result, saved as a checkpoint or pointed to by `latest`. What happens then is `train.on_nan`:

- `stop` (the default): raise `TrainingDiverged`, one line naming the step and the fix; the last good
  checkpoint stays the latest; `tinylm` exits with status 3.
- `rollback`: the run goes back to its latest checkpoint (or, before its first one, to its start), its peak
  learning rate is multiplied by `train.on_nan_lr_factor`, a `nan_rollback` event is logged, and it goes on
  (PaLM's loss-spike recovery, without skipping data: the same batches come again at the lower rate). After
  `train.on_nan_retries` rollbacks in one session, a further divergence stops as `stop` does. A checkpoint can
  be finite yet already ruined (a step at an absurd rate moved every weight by it): when the run diverges again
  before writing a new checkpoint, the next rollback goes one checkpoint further back (and before the oldest
  kept, to the start, when the session began without one).

With fp16 loss scaling an inf gradient is routine (the scaler skips the step and lowers its scale), so there
only the loss is watched.
"""

from __future__ import annotations

import copy
import shlex

import torch

from tinylm.errors import TrainingDiverged
from tinylm.train import distributed


class NonFiniteGuard:
    def __init__(self, run):
        self.run = run
        self.first = None        # device tensors: the first non-finite step (-1: none), its loss and grad norm
        self.rollbacks = 0
        self.last_target = None  # where the last rollback went: a checkpoint's name, or "start"
        self.start_point = None  # before the first checkpoint, `rollback` returns here (kept in memory)
        if run.recipe.train.on_nan == "rollback" and self._checkpoint() is None:
            from tinylm.train.checkpoint import run_state
            self.start_point = ({k: v.detach().clone() for k, v in run.model.state_dict().items()},
                                copy.deepcopy(run_state(run)))

    def observe(self, loss: torch.Tensor, grad_norm: torch.Tensor) -> None:
        """Note this step's values (call after the step: `run.step` is the step just done). No host sync."""
        loss, grad_norm = loss.detach().float(), grad_norm.detach().float()
        bad = ~torch.isfinite(loss)
        if self.run.precision != "fp16":
            bad = bad | ~torch.isfinite(grad_norm)
        if self.first is None:
            minus = torch.full((), -1.0, device=loss.device)
            self.first = (minus.clone(), minus.clone(), minus.clone())
        step, first_loss, first_norm = self.first
        new = bad & (step < 0)
        self.first = (torch.where(new, float(self.run.step), step), torch.where(new, loss, first_loss),
                      torch.where(new, grad_norm, first_norm))

    def diverged(self) -> bool:
        """Whether training went non-finite since the last check (one host sync, agreed across processes).
        `stop` raises TrainingDiverged; `rollback` restores the last good state and returns True."""
        if self.first is None:
            return False
        step, loss, norm = (float(t) for t in self.first)
        if not distributed.any_rank(step >= 0, self.run.world):
            return False
        self.first = None
        t = self.run.recipe.train
        if t.on_nan != "rollback" or self.rollbacks >= t.on_nan_retries:
            raise TrainingDiverged(self._stop_message(int(step), loss, norm))
        self._rollback(int(step), loss, norm)
        return True

    def _checkpoint(self):
        from tinylm.rundir.checkpoints import latest_checkpoint
        return latest_checkpoint(self.run.out_dir) if self.run.out_dir is not None else None

    def _rollback(self, bad_step: int, loss: float, norm: float) -> None:
        from tinylm.loading import checkpoint_model_config
        from tinylm.rundir.checkpoints import check_weights_fit, load_weights
        from tinylm.train.checkpoint import _restore, restore

        run = self.run
        lr = run.train_config.lr
        ckpt = self._target()
        if ckpt is not None and checkpoint_model_config(ckpt).to_dict() != run.model.config.to_dict():
            raise TrainingDiverged(self._stop_message(bad_step, loss, norm) + f" (a rollback cannot undo the "
                                   f"change of model since {ckpt.name})")
        run.metrics.close()  # the file is rewritten without the lines after the restore point: reopen it after
        if ckpt is not None:
            weights = load_weights(ckpt)
            check_weights_fit(run.model, weights, ckpt)
            run.set_weights(weights)  # the Run's primitive: copied, or scattered into the shards
            restore(run, ckpt)
            to = self.last_target = ckpt.name
        elif self.start_point is not None:
            weights, state = self.start_point
            run.set_weights(weights)
            _restore(run, copy.deepcopy(state))
            run.metrics.truncate_after(run.step, state["counters"].get("metrics_lines"))  # the lines it had then
            to, self.last_target = "the run's start", "start"
        else:
            raise TrainingDiverged(self._stop_message(bad_step, loss, norm))
        self.rollbacks += 1
        run.set_hyperparameters(lr=lr * run.recipe.train.on_nan_lr_factor)
        run.log_event("nan_rollback", bad_step=bad_step, loss=_num(loss), grad_norm=_num(norm), to=to,
                      lr_before=lr, lr=run.train_config.lr, rollback=self.rollbacks)

    def _target(self):
        """The checkpoint to go back to (None: the run's start): the latest, unless none was written since the
        last rollback went there; then the one before it, and before the oldest kept, the start (if held)."""
        from tinylm.rundir.checkpoints import is_complete

        ckpt = self._checkpoint()
        if ckpt is None or ckpt.name != self.last_target:
            return ckpt
        older = sorted(p for p in ckpt.parent.glob("step-*") if p.name < ckpt.name and is_complete(p))
        if older:
            return older[-1]
        return None if self.start_point is not None else ckpt

    def _stop_message(self, step: int, loss: float, norm: float) -> str:
        run, t = self.run, self.run.recipe.train
        lr = run.train_config.lr
        what = f"the training loss became {_num(loss)} (gradient norm {_num(norm)})"
        again = f" again after {self.rollbacks} rollback(s) (train.on_nan_retries: {t.on_nan_retries})" \
            if self.rollbacks else ""
        ckpt = self._checkpoint()
        if run.out_dir is None:
            kept = "nothing was saved"
        elif ckpt is None:
            kept = "no checkpoint had been written yet"
        else:
            kept = f"{ckpt.name} stays the latest checkpoint"
        if ckpt is not None:
            fix = (f"lower train.lr (now {lr:g}) and continue from it: `tinylm train --out "
                   f"{shlex.quote(str(run.out_dir))} --resume --force --set train.lr={lr / 4:g}`")
        else:
            fix = f"lower train.lr (now {lr:g}) and train again"
        policy = "" if t.on_nan == "rollback" else ", or set train.on_nan: rollback"
        return f"training diverged at step {step}{again}: {what}; {kept}: {fix}{policy}"


def _num(x: float):
    return x if x == x and abs(x) != float("inf") else str(x)
