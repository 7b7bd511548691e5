"""The one training loop. Short and boring on purpose: every curriculum is a method reacting to
its events (see `tinylm.methods.base`), never a change here.
"""

from __future__ import annotations

import contextlib
import resource
import time

import torch

from tinylm.data.batches import to_device
from tinylm.eval.validation import evaluate
from tinylm.precision import autocast, run_precision
from tinylm.train import distributed
from tinylm.train.checkpoint import save_checkpoint
from tinylm.train.nonfinite import NonFiniteGuard


def _memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def _trainable(run):
    return [p for g in run.optimizer.param_groups for p in g["params"]]


def _soft_targets(run, batch):
    """The soft targets the run's one giver supplies for this micro-batch (distill's teachers), else None."""
    return next((t for m in run.methods if (t := m.soft_targets(run, batch)) is not None), None)


def train_step(run, scaler) -> tuple[torch.Tensor, torch.Tensor, float]:
    """One optimizer step over grad_accum micro-batches; returns (loss, grad norm, data seconds)."""
    accum = run.recipe.train.grad_accum
    loss_sum = torch.zeros((), device=run.device)
    data_time = 0.0
    run.emit("step_start")
    wants_logits = any(method.uses_logits for method in run.methods)
    for micro in range(accum):
        t = time.perf_counter()
        batch = to_device(run.batches.next_batch(), run.device)
        data_time += time.perf_counter() - t
        last = micro == accum - 1
        sync = contextlib.nullcontext() if last or not run.world.active else run.objective.no_sync()
        with sync:
            targets = _soft_targets(run, batch)
            with autocast(run.device, run_precision(run)):
                total, loss, kl, logits = run.objective(batch["input_ids"], batch.get("attention_mask"),
                                                        batch["labels"], wants_logits, targets)
            if targets is not None:
                run.emit("soft_loss", loss.detach(), kl.detach())
            if wants_logits:
                for method in run.methods:
                    extra = method.on_loss(run, batch, logits, loss)
                    if extra is not None:
                        total = total + extra
            scaler.scale(total / accum).backward()
        loss_sum += loss.detach()
    run.emit("after_backward")
    scaler.unscale_(run.optimizer)
    clip = run.recipe.train.clip
    params = _trainable(run)
    grad_norm = distributed.full(torch.nn.utils.clip_grad_norm_(params, clip if clip > 0 else float("inf")))
    factor = run.schedule.factor(run.step)
    for group in run.optimizer.param_groups:
        group["lr"] = group["base_lr"] * factor * group.get("lr_scale", 1.0)
    scaler.step(run.optimizer)
    scaler.update()
    run.optimizer.zero_grad(set_to_none=True)
    run.step += 1
    run.tokens += run.tokens_per_step
    run.flops += run.flops_per_token * run.tokens_per_step
    run.emit("step_end")
    return loss_sum / accum, grad_norm, data_time


def train(run, on_step=None, on_eval=None, on_start=None) -> dict:
    """Train until the run's length or a stop request; returns the last metrics.

    `on_start(run)` is called once the methods have started (their checks passed, teachers loaded),
    before the first step: a progress bar's first line then never precedes a method's one-line error.
    `on_step(run, record)` is called after every step (the CLI's progress bar); `on_eval(run, metrics)`
    after every validation, methods first (a sweep reports to its pruner there and may `run.finish`).

    However the training ends (a return, an error, Ctrl-C), the data workers (`data.workers`) end with it.
    """
    try:
        return _train(run, on_step, on_eval, on_start)
    finally:
        close = getattr(run.batches, "close", None)  # `data.workers` > 0: tinylm.data.prefetch
        if close is not None:
            close()


def _train(run, on_step=None, on_eval=None, on_start=None) -> dict:
    t = run.recipe.train
    if run.sharded:  # sharded gradients: an inf on one rank's shard skips the step on every rank
        from tinylm.train.fsdp import grad_scaler
        scaler = grad_scaler(run.device, enabled=run.precision == "fp16")
    else:
        scaler = torch.amp.GradScaler(run.device.type, enabled=run.precision == "fp16")
    run.model.train()
    run.check_methods()
    run.emit("start")
    if on_start:
        on_start(run)
    every_log, every_eval, every_ckpt = max(1, t.log_every), run.recipe.eval.every, run.recipe.checkpoint.every
    window_start, window_tokens, window_data = time.perf_counter(), 0, 0.0
    window_flops = run.flops
    vote = distributed.StopVote(run.world)
    guard = NonFiniteGuard(run)  # a NaN/inf loss is never evaluated, saved or finished (train.on_nan)
    # A resumed run picks up its last log line: one killed after its last checkpoint but before its end
    # trains no step, and still ends as an uninterrupted one does (final eval, `end`, summary).
    record: dict = dict(run.metrics.last_log)
    if run.step < run.total_steps:
        run.ended = False  # (a longer --force duration reopens an ended run)
    while run.step < run.total_steps:
        loss, grad_norm, data_time = train_step(run, scaler)
        guard.observe(loss, grad_norm)
        logged = run.step % every_log == 0 or run.step == run.total_steps
        evaluated = bool(every_eval) and run.step % every_eval == 0 and run.step < run.total_steps
        checkpointed = bool(every_ckpt) and run.step % every_ckpt == 0 or bool(run.word_checkpoints.due(run.words_seen))
        # The non-finite check's host sync goes where the loop syncs anyway: a log, an eval, a checkpoint, a stop.
        syncs = logged or evaluated or checkpointed or (run.stop_requested and not run.world.active)
        if syncs and guard.diverged():  # rolled back: go on from there
            window_start, window_tokens, window_data, window_flops = time.perf_counter(), 0, 0.0, run.flops
            continue
        window_tokens += run.tokens_per_step
        window_data += data_time
        if logged:
            if run.device.type == "cuda":
                torch.cuda.synchronize(run.device)
            elapsed = time.perf_counter() - window_start
            record = {"step": run.step, "tokens": run.tokens, **run.words_field, "flops": run.flops,
                      "lr": run.train_config.lr * run.schedule.factor(run.step - 1), "loss": float(loss), "grad_norm": float(grad_norm),
                      "tokens_per_s": window_tokens / elapsed, "data_s": window_data,
                      "compute_s": elapsed - window_data, "memory_mb": _memory_mb(run.device),
                      "flops_per_s": (run.flops - window_flops) / elapsed}
            if run.peak_flops:  # model FLOPs utilisation, when the device's peak is known (tinylm.compute)
                record["mfu"] = record["flops_per_s"] / (run.peak_flops * run.world.size)
            for method in run.methods:
                record.update(method.log_metrics())
            run.metrics.write(record)
            window_start, window_tokens, window_data = time.perf_counter(), 0, 0.0
            window_flops = run.flops
        if evaluated:
            _eval(run, on_eval)
        if on_step:
            on_step(run, record)
        stop = vote(run.stop_requested)  # across processes: every rank stops at the same step
        if stop and not syncs and guard.diverged():  # a stop's checkpoint is checked like any other
            continue
        if checkpointed or stop:
            save_checkpoint(run)
        if stop:
            return record
    vote.close()
    final = _eval(run, on_eval)
    run.emit("stop")
    digests = distributed.gather_digests(run.model, run.world)
    run.log_event("end", ranks_weights_digest=digests, **final)
    run.ended = True
    save_checkpoint(run)
    return {**record, **final}


def _eval(run, on_eval=None) -> dict:
    metrics = evaluate(run.model, run.val_batches, run.device, run_precision(run))
    run.metrics.write({"step": run.step, "tokens": run.tokens, **run.words_field, "flops": run.flops, **metrics})
    run.emit("eval", metrics)
    if on_eval:
        on_eval(run, metrics)
    return metrics
