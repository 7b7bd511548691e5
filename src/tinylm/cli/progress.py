"""Progress for a terminal (a tqdm bar with loss, tokens/s and ETA) or plain log lines otherwise."""

from __future__ import annotations

import sys


class TrainingProgress:
    def __init__(self, enabled: bool = True, announce: bool = False):
        self.enabled = enabled
        self.announce = announce  # `tinylm train`: first a line saying the precision and why
        self.bar = None
        self.tty = sys.stderr.isatty()

    def start(self, run) -> None:
        """With `announce`, the first line says which precision the run computes in and why (`auto` is
        resolved on this device); a warning (bf16 emulated) is printed even when progress is off."""
        choice = run.precision_choice
        if self.announce and run.world.is_main and (self.enabled or choice.warning):
            print(choice.line(), file=sys.stderr, flush=True)
        if not self.enabled or not run.world.is_main:
            self.enabled = False
            return
        if self.tty:
            from tqdm import tqdm
            self.bar = tqdm(total=run.total_steps, initial=run.step, unit="step", dynamic_ncols=True, file=sys.stderr)

    def step(self, run, record: dict) -> None:
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.update(run.step - self.bar.n)
            if record:
                self.bar.set_postfix(loss=f"{record['loss']:.3f}", tok_s=f"{record['tokens_per_s']:.0f}", refresh=False)
        elif record and record.get("step") == run.step:
            print(f"step {run.step}/{run.total_steps} loss {record['loss']:.4f} lr {record['lr']:.2e} "
                  f"{record['tokens_per_s']:.0f} tok/s", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
