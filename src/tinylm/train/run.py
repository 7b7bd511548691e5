"""The Run: a config plus state, and the primitives every method is built on.

Methods never touch optimizer internals or module lists directly; they call these primitives,
which keep the optimizer's groups, the wrapped (compiled / data-parallel) model, the FLOPs
counter and the checkpoint consistent, and log each call as an event in `metrics.jsonl`.
"""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path
from typing import Callable, Iterable

import torch
from torch import nn

from tinylm.compiling import compiled
from tinylm.compute import flops_per_token, peak_flops
from tinylm.errors import UserError
from tinylm.methods.base import check_one_soft_target_source
from tinylm.models import build_model
from tinylm.precision import PrecisionChoice, resolve_precision
from tinylm.train import distributed, fsdp
from tinylm.train.cpu_memory import keep_freed_memory
from tinylm.train.metrics import MetricsLog
from tinylm.train.objective import Objective
from tinylm.train.optim import build_optimizer, decays, load_state_by_name, param_groups, state_by_name
from tinylm.train.recipe import Recipe
from tinylm.train.schedule import Schedule
from tinylm.train.word_checkpoints import WordCheckpoints, parse_milestones
from tinylm.data.words_seen import SCALE
from tinylm.rundir.serialize import load_tree, save_tree

log = logging.getLogger(__name__)

COMPILED_STRUCTURES = 64  # graphs kept per compiled function (dynamo's recompile_limit)


def cache_compiled_objective() -> None:
    """Let torch's on-disk cache of compiled training graphs (AOTAutogradCache) keep ours.

    It skips graphs that call a custom `autograd.Function` unless told otherwise, and the objective's
    cross-entropy is one (losses/cross_entropy.py), so every compiled run traced its forward and
    backward again from scratch. The key covers the traced forward and backward of the function, so
    a changed loss is a new entry. With it, a structure compiled before (another seed, a resumed
    run, a sweep's next trial, grow's stages in a re-run) costs far less: BabyLlama 16M on the 2-core
    CPU, a grow event (growth or phase switch) took about 2.5 s with the kernels cached but the graphs
    traced again, 0.59 s with this (bench/method_overhead.py --compile, run twice).
    """
    import torch._functorch.config as functorch_config

    functorch_config.autograd_cache_allow_custom_autograd_functions = True


ParamSelector = Iterable[str] | Iterable[nn.Parameter] | Callable[[str, nn.Parameter], bool] | None


class Run:
    def __init__(self, recipe: Recipe, model: nn.Module, batches, val_batches: list[dict], device: torch.device,
                 total_steps: int, methods: list, out_dir: Path | None = None, world=None,
                 precision: PrecisionChoice | None = None):
        check_one_soft_target_source(methods)  # for runs built by hand too; the loop takes the first it finds
        self.recipe, self.device, self.methods = recipe, device, methods
        # `train.precision` resolved for this device (auto: bf16 where native, else fp32), once: autocast,
        # the optimizer, distill and MFU all read `self.precision`; the recipe keeps what the user wrote.
        self.precision_choice = precision or resolve_precision(recipe.train.precision, device)
        self.precision = self.precision_choice.precision
        self.out_dir = Path(out_dir) if out_dir else None
        self.world = world or distributed.World()
        self.batches, self.val_batches = batches, val_batches
        self.total_steps = total_steps
        self.step = 0          # optimizer steps done
        self.tokens = 0        # tokens trained on, all processes together
        self.flops = 0.0       # cumulative training FLOPs, all processes together
        self.word_checkpoints = WordCheckpoints(parse_milestones(recipe.checkpoint.words))
        self.stop_requested = False
        # Wall time: the sessions before this one (up to the checkpoint resumed from, carried in it) plus
        # this one since `session_start` (execute moves it back to when the session began).
        self.wall_before = 0.0
        self.session_start = time.time()
        self.metrics = MetricsLog(self.out_dir / "metrics.jsonl" if self.out_dir and self.world.is_main else None)
        t = recipe.train
        self.schedule = Schedule(t.schedule, t.warmup, t.min_lr_ratio, 0, total_steps)
        self.snapshots: dict[str, object] = {}   # tag -> in-memory state, or the directory name on disk
        self.hparams: dict[str, float] = {}      # lr / weight_decay set by a method (FORGETTER's last episode)
        self.lr_scales: dict[str, float] = {}    # per-parameter LR multipliers (GAFF's embedding-only schedule)
        self.parked: dict[str, dict] = {}        # optimizer state of frozen parameters, theirs again when they train
        self.finished_early = False
        self.ended = False  # the final evaluation and `end` event are logged (the loop's last act)
        if device.type == "cpu":
            keep_freed_memory()  # a step's buffers are reused, not page-faulted in again (cpu_memory.py)
        # `train.parallel: fsdp` under torchrun: each process holds a shard (tinylm.train.fsdp); alone, a whole model
        self.sharded = recipe.train.parallel == "fsdp" and self.world.active
        self.model = self._placed(model)
        self.optimizer = self._new_optimizer()
        # The device's peak FLOP/s for MFU: given (TINYLM_PEAK_FLOPS), cached, or measured once on a GPU (a
        # CPU is not benchmarked unasked: `python bench/peak_flops.py`).
        self.peak_flops = peak_flops(self.device, self.precision, measure=self.device.type == "cuda")
        self._refresh()

    # -- derived state -------------------------------------------------------------------------
    @property
    def wall_s(self) -> float:
        """Seconds this run has taken, all its sessions together (what a summary's `wall_s` says)."""
        return self.wall_before + (time.time() - self.session_start)

    @property
    def tokens_per_step(self) -> int:
        t = self.recipe.train
        return t.batch_size * t.grad_accum * self.recipe.data.seq_len * self.world.size

    def _refresh(self) -> None:
        """Re-wrap the model with its loss (`Objective`, then compile / DDP) and recount FLOPs after any structural change."""
        wrapped = Objective(self.model)
        if self.recipe.train.compile:
            # Every structure (grow's stages, each with its frozen set) is one more compiled graph of
            # Objective.forward; past dynamo's default 8 it would fall back to eager without a word.
            torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, COMPILED_STRUCTURES)
            cache_compiled_objective()
            wrapped = compiled(wrapped, self.recipe.train.compile_mode)
        self.objective = distributed.wrap(wrapped, self.world, self.device, self.model if self.sharded else None)
        self.flops_per_token = flops_per_token(self.model, self.recipe.data.seq_len, self._head_fraction())

    def _head_fraction(self) -> float:
        """The share of positions the output head runs at: a masked LM's labelled ones where `Objective` heads
        only those (eager, no method reading the logits or giving soft targets), else every position."""
        full = self.recipe.train.compile or any(m.uses_logits or m.gives_soft_targets for m in self.methods)
        if full or not getattr(self.model, "predicts_at", False):
            return 1.0
        return self.recipe.data.mlm_probability or 1.0  # a config.yaml that dropped the rate: count the full head

    def named(self, params: ParamSelector = None) -> list[tuple[str, nn.Parameter]]:
        """Resolve names, parameters or a predicate (name, param) -> bool to (name, param) pairs."""
        everything = list(self.model.named_parameters())
        if params is None:
            return everything
        if callable(params):
            return [(n, p) for n, p in everything if params(n, p)]
        wanted = list(params)
        if all(isinstance(w, str) for w in wanted):
            by_name = dict(everything)
            unknown = [w for w in wanted if w not in by_name]
            if unknown:
                raise KeyError(f"no parameters named {unknown[:3]}")
            return [(w, by_name[w]) for w in wanted]
        ids = {id(w) for w in wanted}
        return [(n, p) for n, p in everything if id(p) in ids]

    @property
    def words_seen(self) -> int | None:
        """Words of training data read so far, all processes together, in `tinylm.data.words_seen` units
        (SCALE per word); None when the token store does not count words."""
        return getattr(self.batches, "words_seen", None)

    @property
    def words_field(self) -> dict:
        """`{"words": n}` (whole words seen, BabyLM's count) for a metrics line; empty when not counted."""
        seen = self.words_seen
        return {} if seen is None else {"words": round(seen / SCALE)}

    def log_event(self, event: str, **fields) -> None:
        self.metrics.write({"event": event, "step": self.step, "tokens": self.tokens, **self.words_field, "flops": self.flops,
                            **fields})

    def emit(self, event: str, *args) -> None:
        for method in self.methods:
            getattr(method, f"on_{event}")(self, *args)

    def check_methods(self) -> None:
        """Each method's `check` of its options against this run, once: `build_run` calls it before it writes
        anything into the run directory, the loop before `start` (for a Run built by hand)."""
        if not getattr(self, "methods_checked", False):
            for method in self.methods:
                method.check(self)
            self.methods_checked = True

    # -- the primitives ------------------------------------------------------------------------
    def reset_optimizer(self, params: ParamSelector = None) -> None:
        """Forget AdamW's moments and step counts of exactly these parameters (all by default)."""
        chosen = self.named(params)
        for name, p in chosen:
            self.optimizer.state.pop(p, None)
            self.parked.pop(name, None)
        self.log_event("reset_optimizer", params=len(chosen), all=params is None)

    def restart_schedule(self, length: int) -> None:
        """Begin a new learning-rate cycle of `length` steps at the current step."""
        self.schedule.restart(self.step, length)
        self.log_event("restart_schedule", length=int(length))

    def rebuild_model(self) -> None:
        """Deep sleep: new module objects from the current weights alone; optimizer fresh.

        Trainability (frozen flags) is kept: it is part of the curriculum, not learned state.
        """
        model = build_model(type(self.model.config).from_dict(self.model.config.to_dict()))
        self.model = self._placed(fsdp.gathered(self.model, into=model))
        self.optimizer = self._new_optimizer()
        self.parked = {}
        self._refresh()
        self.log_event("rebuild_model")

    @torch.no_grad()
    def reinit(self, params: ParamSelector) -> None:
        """Draw fresh weights for these parameters with the model's own initialisation."""
        chosen = self.named(params)
        for name, p in chosen:
            if fsdp.is_sharded(p):
                fsdp.reinit_full(self.model, name, p)
            else:
                self.model.init_parameter_(name, p)
        self.log_event("reinit", params=[n for n, _ in chosen])

    def set_trainable(self, predicate: Callable[[str, nn.Parameter], bool]) -> None:
        """Freeze what `predicate` rejects; optimizer groups follow (frozen: no update, no decay).

        A frozen parameter's AdamW state is parked, not dropped: when it trains again it goes on with
        its moments and step count, as a plain PyTorch loop that flips `requires_grad` would.
        """
        for name, p in self.model.named_parameters():
            p.requires_grad_(bool(predicate(name, p)))
            if not p.requires_grad:
                p.grad = None
        self._rebuild_optimizer_groups()
        self.log_event("set_trainable", trainable=sum(p.requires_grad for p in self.model.parameters()))

    def grow(self, n_layers: int) -> list[str]:
        """Append `n_layers` freshly initialised blocks; they train, with fresh optimizer state."""
        names = self.model.append_layers(n_layers)
        if not self.sharded:  # sharded: the new blocks join the shards in the rebuild of the groups
            self.model.to(self.device)
        self._rebuild_optimizer_groups()
        self.log_event("grow", layers=int(n_layers), n_layers=self.model.config.n_layers)
        return names

    def truncate(self, n_layers: int) -> list[str]:
        """Keep the first `n_layers` blocks; the rest go, with their optimizer state (growth from small)."""
        names = self.model.truncate_layers(n_layers)
        for name in names:
            self.parked.pop(name, None)
        self._rebuild_optimizer_groups()
        self.log_event("truncate", n_layers=self.model.config.n_layers, params=len(names))
        return names

    def snapshot(self, tag: str) -> None:
        """A restore point (weights and optimizer state): on disk in a run directory, else in memory."""
        # whole (gathered when sharded: the same file as a 1-process run's, so any world size rolls back to it)
        optimizer = self.optimizer_state()
        state = {"weights": fsdp.full_state(self.model),
                 "optimizer": fsdp.full_tree(optimizer) if self.sharded else optimizer}
        if self.out_dir is None:
            state["optimizer"] = {n: {k: v.clone() for k, v in s.items()} for n, s in state["optimizer"].items()}
            self.snapshots[tag] = state
        else:
            name = f"{tag}-step{self.step:08d}"
            directory = self.out_dir / "snapshots" / name
            if self.world.is_main and not directory.exists():
                tmp = directory.with_name(f".tmp-{name}")
                shutil.rmtree(tmp, ignore_errors=True)
                tmp.mkdir(parents=True)
                save_tree(state, tmp, "snapshot", checksums={})  # sealed: a flipped byte is caught on rollback
                tmp.rename(directory)
            self.world.barrier()
            self.snapshots[tag] = name
        self.log_event("snapshot", tag=tag)

    def has_snapshot(self, tag: str) -> bool:
        ref = self.snapshots.get(tag)
        if isinstance(ref, str):
            return self.out_dir is not None and (self.out_dir / "snapshots" / ref).is_dir()
        return ref is not None

    def rollback(self, tag: str) -> None:
        """Restore weights and optimizer state of a snapshot, bit for bit."""
        if not self.has_snapshot(tag):
            raise UserError(f"cannot roll back to snapshot {tag!r}: none was taken or its files are gone "
                            f"(have {sorted(self.snapshots) or 'none'}); take `snapshot({tag!r})` first")
        state = self.snapshots[tag]
        if isinstance(state, str):
            state = load_tree(self.out_dir / "snapshots" / state, "snapshot")
        if set(state["weights"]) != set(self.model.state_dict()):
            raise UserError(f"cannot roll back to snapshot {tag!r}: it holds a model of another shape (taken "
                            f"before a grow or truncate; now {self.model.config.n_layers} layers); a rollback "
                            "cannot undo growth: take the snapshot after it, or do not roll back across it")
        self.set_weights(state["weights"])
        self.load_optimizer_state(state["optimizer"])
        self.log_event("rollback", tag=tag)

    def set_hyperparameters(self, lr: float | None = None, weight_decay: float | None = None) -> None:
        """Change the peak learning rate and/or weight decay from now on (optimizer state kept)."""
        for key, value in (("lr", lr), ("weight_decay", weight_decay)):
            if value is not None:
                self.hparams[key] = float(value)
        cfg = self.train_config
        for group in self.optimizer.param_groups:
            group["base_lr"] = cfg.lr
            if decays(group["names"][0], group["params"][0], cfg):  # not `if group["weight_decay"]`: 0 must not stick
                group["weight_decay"] = cfg.weight_decay
        self.log_event("set_hyperparameters", lr=cfg.lr, weight_decay=cfg.weight_decay)

    def set_lr_scale(self, params: ParamSelector, scale: float, log: bool = True) -> None:
        """Multiply these parameters' learning rate by `scale` (1.0 restores it).

        Cheap enough to call every step (a per-parameter schedule); pass `log=False` then.
        """
        names = {n for n, _ in self.named(params)}
        for name in names:
            if scale == 1.0:
                self.lr_scales.pop(name, None)
            else:
                self.lr_scales[name] = float(scale)
        # In place only when the groups stay exactly what a rebuild (e.g. on resume) would make: their
        # order is the order gradient clipping sums norms in, so a stale layout breaks exact resume.
        groups = self.optimizer.param_groups
        wanted = param_groups(self.model.named_parameters(), self.train_config, self.lr_scales)
        if [g["names"] for g in wanted] == [g["names"] for g in groups]:
            for g, w in zip(groups, wanted):
                g["lr_scale"] = w["lr_scale"]
        else:
            self._rebuild_optimizer_groups(rewrap=False)
        if log:
            self.log_event("set_lr_scale", params=len(names), scale=float(scale))

    def finish(self, reason: str) -> None:
        """End training after this step, as complete (final eval, `stop` event, checkpoint)."""
        self.total_steps = self.step
        self.finished_early = True
        self.log_event("finish", reason=reason)

    def evaluate(self) -> dict:
        """Validation loss on the run's fixed windows (no event emitted; the loop's evals do that)."""
        from tinylm.eval.validation import evaluate
        return evaluate(self.model, self.val_batches, self.device, self.precision)

    @property
    def train_config(self):
        """The recipe's train section with the methods' hyperparameter changes applied."""
        import dataclasses
        return dataclasses.replace(self.recipe.train, **self.hparams) if self.hparams else self.recipe.train

    def optimizer_state(self) -> dict[str, dict]:
        """AdamW state by parameter name: the trained parameters' and the parked (frozen) ones'."""
        return {**self.parked, **state_by_name(self.optimizer)}

    def load_optimizer_state(self, state: dict[str, dict]) -> None:
        """Inverse of `optimizer_state`: trainable parameters get theirs, frozen ones keep theirs parked.
        Sharded: full moments (a 1-process checkpoint, a snapshot) are scattered to each parameter's layout."""
        if self.sharded:
            state = fsdp.shard_state(state, dict(self.model.named_parameters()))
        load_state_by_name(self.optimizer, state)
        live = {n for g in self.optimizer.param_groups for n in g["names"]}
        present = {n for n, _ in self.model.named_parameters()}
        self.parked = {n: s for n, s in state.items() if n not in live and n in present}

    @torch.no_grad()
    def set_weights(self, weights: dict[str, torch.Tensor]) -> None:
        """Put these weights (the model's names and shapes, whole or identically sharded) into the model."""
        if self.sharded:
            fsdp.set_weights(self.model, weights)
        else:
            for k, v in self.model.state_dict().items():
                v.copy_(weights[k])

    def _placed(self, model: nn.Module) -> nn.Module:
        model = model.to(self.device)
        return fsdp.shard(model, self.world.size, self.device, self.precision) if self.sharded else model

    def _new_optimizer(self):
        return build_optimizer(self.model, self.train_config, self.device, self.lr_scales, self.precision)

    def _rebuild_optimizer_groups(self, rewrap: bool = True) -> None:
        """New groups, same per-parameter state (frozen parameters' parked). `rewrap`: trainability or
        structure changed, so the compiled / data-parallel wrapper and the FLOPs count must follow."""
        kept = self.optimizer_state()
        if rewrap and self.sharded:  # FSDP cannot adopt new blocks or flags: shard a plain copy again (fsdp.py)
            self.model = self._placed(fsdp.gathered(self.model))
        self.optimizer = self._new_optimizer()
        self.load_optimizer_state(kept)
        if rewrap:
            self._refresh()
