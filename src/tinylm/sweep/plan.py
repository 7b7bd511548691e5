"""How big a sweep is before it starts: runs, model sizes, training FLOPs and an estimated time.

Why: a structure search swaps the recipe's model for every candidate, so the recipe says nothing of
the work's size: the README's 120-rule sweep on forgetter-tiny (a 7M-parameter recipe) enumerates
560 structures of 40M+ parameters, days on a CPU. The sweep command shows the plan first and asks
before one that is far larger than a recipe suggests (`Plan.far_larger`: more than FAR_RUNS runs, or
more than FAR_MINUTES minutes estimated).

The time is an estimate: the plan's training FLOPs (6 x matmul parameters + attention per token, as
tinylm.compute counts a fully trainable model) over the FLOP/s that one training step of the plan's
smallest model reaches here (a probe of one sequence, after one step to warm up). Evaluation,
compilation and preparing a `sources:` store are not in it. Nothing is written to make a plan.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from tinylm.compute import attention_width
from tinylm.errors import UserError
from tinylm.models import ModelConfig, build_model, count_parameters, resolve_model_config
from tinylm.train.recipe import Recipe

FAR_RUNS = 100       # more training runs than this ...
FAR_MINUTES = 30     # ... or more estimated minutes than this, and the sweep asks before it starts
GPT2_VOCAB = 50257   # assumed for a hub tokenizer, which a plan does not download
PROBE_TOKENS = 512   # most tokens in the probe's timed step


@dataclass
class Plan:
    runs: int
    steps: int | None                   # optimizer steps per run (None: epochs of a store not prepared yet)
    tokens_per_step: int
    parameters: tuple[int, int]         # fewest and most parameters among the models it trains
    recipe_parameters: int              # the recipe's own model
    flops: float | None                 # training FLOPs of all runs together
    flops_per_s: float | None           # what the one-step probe reached on this machine

    @property
    def seconds(self) -> float | None:
        return self.flops / self.flops_per_s if self.flops and self.flops_per_s else None

    @property
    def far_larger(self) -> bool:
        return self.runs > FAR_RUNS or (self.seconds or 0.0) > FAR_MINUTES * 60

    def reasons(self) -> list[str]:
        """Why the plan is far larger (empty when it is not)."""
        out = [f"{self.runs} runs (more than {FAR_RUNS})"] if self.runs > FAR_RUNS else []
        if (self.seconds or 0.0) > FAR_MINUTES * 60:
            out.append(f"about {duration_text(self.seconds)} estimated (more than {FAR_MINUTES} min)")
        return out

    def describe(self) -> str:
        lo, hi = self.parameters
        size = f"{lo / 1e6:.1f}M" if lo == hi else f"{lo / 1e6:.1f}M-{hi / 1e6:.1f}M"
        own = f" (the recipe's own: {self.recipe_parameters / 1e6:.1f}M)" if self.recipe_parameters else ""
        steps = f"{self.steps:,} steps" if self.steps else "epochs"
        runs = f"{self.runs} run" + ("s" if self.runs != 1 else "")
        models = f"models of {size}" if lo != hi else f"a model of {size}"
        text = f"plan: {runs} of {steps} ({self.tokens_per_step:,} tokens each), {models} parameters{own}"
        if self.seconds is not None:
            text += (f"; {self.flops:.2g} training FLOPs, about {duration_text(self.seconds)} at the "
                     f"{self.flops_per_s / 1e9:,.0f} GFLOP/s a one-step probe reached here (evaluation not counted)")
        return text


def duration_text(seconds: float) -> str:
    for unit, size in (("days", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.0f} s"


def flops_per_token(cfg: ModelConfig, seq_len: int) -> float:
    """Training FLOPs per token of a fully trainable model, from its config alone (no model is built):
    tinylm.compute's count, 6 x matmul parameters plus 3 x the attention's forward per layer."""
    attention = (2.0 if cfg.kind == "decoder" else 4.0) * seq_len * attention_width(cfg)
    return 6.0 * count_parameters(cfg)["matmul_parameters"] + 3.0 * attention * cfg.n_layers


def model_config(model: dict, vocab_size: int) -> ModelConfig:
    """A recipe `model:` section as a config with the plan's vocabulary, as train/build.py makes it."""
    section = {k: v for k, v in model.items() if k not in ("init_from", "vocab_size")}
    name, flavour = section.pop("name"), section.pop("flavour", None)
    if name == "init_from":  # the pretrained model's architecture
        from tinylm.rundir.checkpoints import resolve_checkpoint
        from tinylm.rundir.checkpoints import read_model_config

        ckpt, _ = resolve_checkpoint(model["init_from"])
        base = ModelConfig.from_dict(read_model_config(ckpt))
        return base.replace(**({"flavour": flavour} if flavour else {}), vocab_size=vocab_size, **section)
    return resolve_model_config(name, flavour=flavour, vocab_size=vocab_size, **section)


def existing_store(recipe: Recipe):
    """The recipe's token store if it exists (a `sources:` store is not prepared for a plan), else None."""
    from tinylm.data import TokenStore
    from tinylm.data.store_cache import sources_store_path

    if recipe.data.store is not None:
        return TokenStore.open(os.path.expandvars(os.path.expanduser(recipe.data.store)))
    path = sources_store_path(recipe.data)
    return TokenStore.open(path) if (path / "meta.json").is_file() else None


def vocab_size(recipe: Recipe, store) -> int:
    """The models' vocabulary: the recipe's number, else the store's, else the tokenizer's (a BPE to
    train: its size; a shipped or local one: loaded; a hub id: GPT-2's, as nothing is downloaded)."""
    from pathlib import Path

    from tinylm.data.tokenizer import _ALIASES as ALIASES
    from tinylm.data.tokenizer import SHIPPED, load_tokenizer, parse_trainable
    from tinylm.data.tokenizer import vocab_size as tokenizer_vocab

    given = recipe.model.get("vocab_size")
    if given not in (None, "auto"):
        return int(given)
    if store is not None:
        return store.vocab_size
    name = str(recipe.data.tokenizer)
    trainable = parse_trainable(name)
    if trainable:
        return trainable[1]
    if name in SHIPPED or name in ALIASES or Path(name).expanduser().exists():
        return tokenizer_vocab(load_tokenizer(name))
    return GPT2_VOCAB


def steps_per_run(recipe: Recipe, store, tokens_per_step: int) -> int | None:
    from tinylm.duration import parse_duration

    tokens = len(store.split("train")) if store is not None else None
    try:
        return parse_duration(recipe.train.duration).to_steps(tokens_per_step, tokens)
    except UserError:  # epochs of a store that is not prepared yet
        return None


def probe_flops_per_second(cfg: ModelConfig, recipe: Recipe) -> float:
    """Model FLOP/s one training step of `cfg` reaches on the recipe's device, threads and precision.

    The timed step has the recipe's micro-batch up to PROBE_TOKENS tokens (a few seconds on a small
    CPU for a 7M model): a smaller batch runs at a lower FLOP/s, so the estimate errs long, not short.
    """
    from tinylm.precision import resolve_precision, torch_dtype
    from tinylm.train.build import pick_device, set_threads
    from tinylm.train.distributed import World

    device = pick_device(recipe.train.device, World())
    precision = resolve_precision(recipe.train.precision, device).precision
    seq_len = recipe.data.seq_len
    batch = max(1, min(recipe.train.batch_size, PROBE_TOKENS // seq_len))
    threads_before = set_threads(recipe.train.threads)
    try:
        generator = torch.Generator().manual_seed(0)
        model = build_model(cfg).to(device)
        ids = torch.randint(cfg.vocab_size, (batch, seq_len + 1), generator=generator).to(device)
        for rows in (1, batch):  # the first warms up (threads, allocations, kernels); the second is timed
            start = time.perf_counter()
            with torch.autocast(device.type, dtype=torch_dtype(precision), enabled=precision != "fp32"):
                logits = model(ids[:rows, :-1])
            F.cross_entropy(logits.float().flatten(0, 1), ids[:rows, 1:].flatten()).backward()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            elapsed = time.perf_counter() - start
    finally:
        torch.set_num_threads(threads_before)
    return flops_per_token(cfg, seq_len) * seq_len * batch / max(elapsed, 1e-9)


def plan_runs(recipe: Recipe, models: list[dict], runs: int | None = None) -> Plan:
    """The plan of training each `models` section (recipe `model:` dicts) once on `recipe`, or, with
    `runs`, that many runs of the single model given."""
    store = existing_store(recipe)
    vocab = vocab_size(recipe, store)
    t = recipe.train
    tokens_per_step = t.batch_size * t.grad_accum * recipe.data.seq_len
    steps = steps_per_run(recipe, store, tokens_per_step)
    configs = [model_config(m, vocab) for m in models]
    sizes = [count_parameters(c)["total"] for c in configs]
    per_token = [flops_per_token(c, recipe.data.seq_len) for c in configs]
    runs = len(configs) if runs is None else runs
    own = model_config(recipe.model, vocab)
    flops = probe = None
    if steps is not None:
        flops = (sum(per_token) if len(configs) == runs else runs * per_token[0]) * tokens_per_step * steps
        # The cheaper of the recipe's model and the plan's smallest: bigger models reach at least its FLOP/s.
        probed = min([own, *configs], key=lambda c: flops_per_token(c, recipe.data.seq_len))
        probe = probe_flops_per_second(probed, recipe)
    return Plan(runs, steps, tokens_per_step, (min(sizes), max(sizes)), count_parameters(own)["total"], flops, probe)
