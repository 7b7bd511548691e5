"""Assemble a Run from a recipe: device, processes, token store, model, data, methods; or resume one."""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import shlex
from pathlib import Path

import torch
import yaml

from tinylm.data.batches import training_batches, validation_batches
from tinylm.data.prefetch import serve_batches
from tinylm.data.store_cache import source_paths, sources_store_path
from tinylm.errors import UserError
from tinylm.loading import checked_weights, checkpoint_model_config
from tinylm.methods import build_methods
from tinylm.models import ModelConfig, build_model, resolve_model_config
from tinylm.output_location import LOCK, check_output_dir, foreign_contents
from tinylm.precision import resolve_precision
from tinylm.rundir.checkpoints import (holds_checkpoints, latest_checkpoint, load_checkpoint_weights, promote,
                                       resolve_checkpoint, state_summary)
from tinylm.rundir.files import read_yaml
from tinylm.tracking import open_trackers
from tinylm.tracking.records import flat_hparams
from tinylm.train import distributed
from tinylm.train.checkpoint import restore
from tinylm.duration import parse_duration
from tinylm.train.recipe import Recipe, apply_overrides, recipe_changes, recipe_from_dict
from tinylm.train.run import Run
from tinylm.train.vocab_check import check_store_fits_model
from tinylm.train.word_checkpoints import check_store_counts_words, parse_milestones

log = logging.getLogger(__name__)


def pick_device(name: str, world: distributed.World) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", world.local_rank)
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError as e:
        raise UserError(f"unknown device {name!r}: use auto, cpu, cuda, cuda:N or mps") from e
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"device {name!r} asked for, but no CUDA device is visible: use auto or cpu")
    return device


def open_store(recipe: Recipe, world: distributed.World):
    """The recipe's token store; `sources:` are prepared once into the cache, keyed by their content."""
    from tinylm.data import TokenStore, prepare_store
    data = recipe.data
    if data.store is not None:
        return TokenStore.open(os.path.expandvars(os.path.expanduser(data.store)))
    sources = source_paths(data)
    out = sources_store_path(data)
    if world.is_main and not (out / "meta.json").exists():
        check_output_dir(out, "TINYLM_CACHE store", fix="set TINYLM_CACHE to a directory you can write to, or "
                         "prepare the store yourself (tinylm prepare) and give it as data.store")
        log.info("preparing %s with %s into %s", ", ".join(sources), data.tokenizer, out)
        prepare_store(sources, data.tokenizer, out, val_fraction=data.val_fraction, seed=data.split_seed,
                      docs=data.docs)
    world.barrier()
    return TokenStore.open(out)


def model_config(recipe: Recipe, store) -> ModelConfig:
    section = dict(recipe.model)
    section.pop("init_from", None)
    name, flavour = section.pop("name"), section.pop("flavour", None)
    vocab = section.pop("vocab_size", "auto")
    fields = {f.name for f in dataclasses.fields(ModelConfig)}
    for key in section:
        if key not in fields:
            import difflib
            hint = difflib.get_close_matches(key, fields, n=1)
            raise UserError(f"unknown recipe key `model.{key}`: " + (f"did you mean `{hint[0]}`?" if hint else
                            f"valid keys: name, flavour, vocab_size, {', '.join(sorted(fields))}"))
    if vocab in (None, "auto"):
        vocab = store.vocab_size
    elif int(vocab) < store.vocab_size:
        raise UserError(f"token store {store.path} has a vocabulary of {store.vocab_size}, larger than the model's "
                        f"{vocab}: set `model.vocab_size: auto` (or at least {store.vocab_size})")
    section["vocab_size"] = int(vocab)
    if "pad" in store.special_ids and "pad_token_id" in fields and "pad_token_id" not in section:
        section["pad_token_id"] = store.special_ids["pad"]
    if name == "init_from":  # the architecture of the pretrained model named by `init_from`
        ckpt, _ = resolve_checkpoint(recipe.model["init_from"])
        base = checkpoint_model_config(ckpt)
        cfg = base.replace(**({"flavour": flavour} if flavour else {}), **section)
    else:
        cfg = resolve_model_config(name, flavour=flavour, **section)
    if cfg.max_seq_len < recipe.data.seq_len:
        raise UserError(f"data.seq_len {recipe.data.seq_len} exceeds the model's max_seq_len {cfg.max_seq_len}: "
                        "lower data.seq_len or set model.max_seq_len")
    want_mlm = recipe.data.sampler == "mlm"
    if want_mlm != (cfg.kind == "encoder"):
        raise UserError(f"model {name!r} is a {cfg.kind} but data.sampler is {recipe.data.sampler!r}: "
                        + ("use `data.sampler: mlm` for encoders" if cfg.kind == "encoder" else
                           "use windows, chunks or epochs for decoders"))
    return cfg


TRAINING_BYTES_PER_PARAMETER = 16  # fp32 weights, gradients and AdamW's two moments


def device_memory(device: torch.device) -> int | None:
    """Bytes of memory on `device` (the machine's RAM for a CPU); None where it cannot be told."""
    try:
        if device.type == "cuda":
            return torch.cuda.get_device_properties(device).total_memory
        if device.type == "cpu":
            return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError, RuntimeError):
        pass
    return None


def check_fits(cfg: ModelConfig, device: torch.device, name=None) -> None:
    """A model whose training state alone exceeds the device's memory (`d_model: 1e7` asked for 2 TB) is a
    typo, refused before it is allocated, not a `can't allocate memory` traceback."""
    from tinylm.models import count_parameters

    memory = device_memory(device)
    params = count_parameters(cfg)["total"]
    need = params * TRAINING_BYTES_PER_PARAMETER
    if memory is not None and need > memory:
        raise UserError(f"model {name or cfg.flavour} has {params:,} parameters: training it needs about "
                        f"{need / 2**30:,.0f} GiB (weights, gradients and AdamW's moments, 16 bytes each) but this "
                        f"{device.type} has {memory / 2**30:,.0f} GiB: choose a smaller model (model.name, "
                        "model.d_model, model.n_layers)")


def init_from_pretrained(model, path, store) -> list[str]:
    """Start from a trained run's weights. With a different tokenizer (a new language), the
    vocabulary-sized tensors keep their fresh init and everything else is copied; returns the
    names that were copied."""
    ckpt, _ = resolve_checkpoint(path)
    source = checked_weights(ckpt)  # those its model_config.json describes
    old_vocab = checkpoint_model_config(ckpt).vocab_size
    same_tokenizer = (ckpt / "tokenizer.json").is_file() and _sha(ckpt / "tokenizer.json") == _sha(
        store.path / store.meta["tokenizer"].get("file", "tokenizer.json"))
    state = model.state_dict()
    copied = []
    for name, tensor in source.items():
        if name not in state or state[name].shape != tensor.shape:
            continue
        if not same_tokenizer and tensor.ndim >= 1 and tensor.shape[0] == old_vocab:
            continue
        state[name].copy_(tensor)
        copied.append(name)
    if not copied:
        raise UserError(f"no weights of {path} fit the model: `model.init_from` needs the same architecture")
    log.info("initialised %d of %d tensors from %s (%s tokenizer)", len(copied), len(state), ckpt,
             "same" if same_tokenizer else "new")
    return copied


def _sha(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def resolved_recipe(recipe: Recipe) -> Recipe:
    """The recipe as it will run, for `config.yaml`: reports, sweeps and resumes read it as the truth.

    A recipe on a prepared store (`data.store`) gets the store's own tokenizer and preparation
    options from its meta.json (the section's defaults, `tokenizer: gpt2` among them, never applied
    to it) and the store's absolute path (so the run resumes from any directory); the MLM masking
    rate is dropped (None) when the sampler is not `mlm`. Idempotent; opens the store only to read.
    Not resolved: `train.precision`/`train.device: auto` (chosen per machine on every start and
    resume; summary.json says what they became) and `model.vocab_size: auto` (the store's, which
    is recorded).
    """
    data = recipe.data
    changes = {}
    if data.store is not None:
        from tinylm.data import TokenStore
        store = TokenStore.open(os.path.expandvars(os.path.expanduser(data.store)))
        options = store.meta.get("options", {})
        changes = {"store": os.path.abspath(store.path), "tokenizer": store.meta["tokenizer"].get("name"),
                   "docs": options.get("docs"), "val_fraction": options.get("val_fraction"),
                   "split_seed": options.get("seed")}
    if data.sampler != "mlm":
        changes["mlm_probability"] = None
    return dataclasses.replace(recipe, data=dataclasses.replace(data, **changes))


def _resolved_yaml(recipe: Recipe) -> str:
    return yaml.safe_dump(recipe.to_dict(), sort_keys=False)


def saved_recipe(out_dir: Path) -> Recipe | None:
    """A run directory's `config.yaml` as a Recipe resolved like a new one (None if it no longer loads).

    Keys added to tinylm since the run started come in at their defaults (no difference), and a
    config.yaml written before recipes were resolved compares equal to its resolved self.
    """
    data = read_config_yaml(out_dir)
    try:
        saved = recipe_from_dict(data)
        return resolved_recipe(saved)
    except UserError:  # e.g. the store it names has moved: compare as written
        return None


def run_changes(out_dir: Path, recipe: Recipe) -> list[str]:
    """The keys in which `recipe` differs from the run in `out_dir` (both resolved; machine keys aside)."""
    saved = saved_recipe(out_dir)
    old = saved.to_dict() if saved is not None else read_config_yaml(out_dir)
    return recipe_changes(old, resolved_recipe(recipe).to_dict())


def check_resume(out_dir: Path, recipe: Recipe, force: bool) -> None:
    if force:  # the new values rule, whatever the run's config.yaml says (even one that no longer reads)
        return
    differ = run_changes(out_dir, recipe)
    if differ and not force:
        raise UserError(f"the recipe differs from the run's in {', '.join(differ)}: resume with the same recipe "
                        f"(or none: `tinylm train --out {shlex.quote(str(out_dir))} --resume` reads the run's config.yaml), "
                        "or pass --force to resume with the new values")


def available_cpus() -> int:
    """CPUs this process may run on (a container's or taskset's limit, not the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def check_threads(threads: int) -> None:
    """`train.threads` above the CPUs this process may use would only oversubscribe them."""
    cpus = available_cpus()
    if threads > cpus:
        raise UserError(f"recipe key `train.threads` is {threads}, more than the {cpus} CPUs this process may use: "
                        f"give at most {cpus} (0 = torch's default)")


def set_threads(threads: int) -> int:
    """Apply `train.threads` (0: leave torch's count as it is); returns the count before, to restore.

    Why a key: torch gives every process all cores by default, so several runs on one machine fight
    for them (forgetter-tiny fell from 413 to 44 tokens/s). torch's count is process-global: whoever
    runs several recipes in one process (a sweep, a seed study) restores it after each (execute).
    """
    before = torch.get_num_threads()
    if threads:
        check_threads(threads)
        torch.set_num_threads(threads)
    return before


def follow_new_length(run: Run, old_total: int) -> None:
    """`--resume --force` with a new `train.duration`: the learning-rate schedule follows the new length.

    The checkpoint's schedule was laid out over the old length, and every other schedule key
    (shape, warmup, min_lr_ratio) already comes from the new recipe; so a shortened run would end
    at a high learning rate (lr 1.3e-3 at step 6 of 6 after 300 -> 6) and a lengthened one decay to
    zero at the old end. A cycle a method started (sleep, forget) is the method's and stays.
    """
    s = run.schedule
    if run.total_steps != old_total and not run.finished_early and (s.cycle_start, s.cycle_length) == (0, max(1, old_total)):
        s.restart(0, run.total_steps)
        run.log_event("schedule_length", old_total_steps=old_total, total_steps=run.total_steps)


def build_run(recipe: Recipe, out_dir: Path | None = None, resume: bool = False, force: bool = False) -> Run:
    """A Run of `recipe` (resolved: `resolved_recipe`), fresh or resumed from `out_dir`'s latest checkpoint.

    Sets torch's thread count to `train.threads` when given; the caller restores `run.threads_before`.
    """
    if out_dir is not None:  # before any work: an --out that cannot hold this run is one line, not a late traceback
        check_output_dir(out_dir, "--out", accept=foreign_run_dir)
    recipe = resolved_recipe(recipe)
    if recipe.train.threads:
        check_threads(recipe.train.threads)  # before anything is written
    world = distributed.init_world("cuda" if torch.cuda.is_available() and recipe.train.device != "cpu" else "cpu")
    device = pick_device(recipe.train.device, world)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    precision = resolve_precision(recipe.train.precision, device)  # here, where the device is known; on resume again
    if precision.precision == "fp16" and device.type != "cuda":
        raise UserError(f"fp16 with loss scaling needs a CUDA device, not {device.type}: "
                        "use `--set train.precision=auto` (bf16 where the device computes it natively)")
    ckpt = None
    if out_dir is not None:
        out_dir = Path(out_dir)
        ckpt = latest_checkpoint(out_dir)
        if ckpt is None and holds_checkpoints(out_dir):  # never a silent restart over a run's checkpoints
            raise UserError(f"{out_dir / 'checkpoints'} holds no complete checkpoint to resume from (each is missing "
                            f"or damaged): restore one, or delete {out_dir / 'checkpoints'} to train this run again "
                            "from step 0")
        if ckpt is None and (out_dir / "summary.json").is_file():  # a session ended here, and ends with a checkpoint
            raise UserError(f"{out_dir} has a summary.json but no checkpoint (its checkpoints folder was deleted?): "
                            f"restore {out_dir / 'checkpoints'}, or delete {out_dir / 'summary.json'} and "
                            f"{out_dir / 'metrics.jsonl'} to train this run again from step 0")
        # `--resume` where no checkpoint is yet (an empty directory, a run killed before its first checkpoint)
        # starts the run: a requeued job's command line works whether or not its first session got that far.
        if not resume and ckpt is not None:
            raise UserError(f"{out_dir} already holds a run: pass --resume to continue it, or choose another --out")
        if ckpt is not None:
            check_resume(out_dir, recipe, force)
    store = open_store(recipe, world)
    check_store_counts_words(parse_milestones(recipe.checkpoint.words), store)
    torch.manual_seed(recipe.train.seed)
    cfg = model_config(recipe, store)
    if ckpt is not None:
        cfg = checkpoint_model_config(ckpt)  # the model as it was (grown layers included)
    check_fits(cfg, device, recipe.model.get("name"))
    check_store_fits_model(store, cfg.vocab_size, ckpt)  # not an IndexError inside the embedding
    model = build_model(cfg)
    if ckpt is not None:
        load_checkpoint_weights(model, ckpt)
    elif recipe.model.get("init_from"):
        init_from_pretrained(model, recipe.model["init_from"], store)
    t = recipe.train
    batches = serve_batches(training_batches(store, recipe.data, t.batch_size, world.rank, world.size), store,
                            recipe.data, t.batch_size, world.rank, world.size, recipe.data.workers, device)
    val = validation_batches(store, recipe.data, recipe.eval.windows, recipe.eval.batch_size, recipe.eval.seed)
    tokens_per_step = t.batch_size * t.grad_accum * recipe.data.seq_len * world.size
    total = parse_duration(t.duration).to_steps(tokens_per_step, len(store.split("train")))
    run = Run(recipe, model, batches, val, device, total, build_methods(recipe.methods), out_dir, world, precision)
    run.store = store
    if ckpt is not None:
        restore(run, ckpt)
    run.check_methods()  # the methods' options against this model and length: refused before anything is written
    # the checkpoint's length, read here: a `.tmp-step-N` found by scanning is renamed just below
    old_total = int(state_summary(ckpt)["counters"]["total_steps"]) if ckpt is not None else None
    if ckpt is not None and ckpt.name.startswith("."):  # every process has read it before rank 0 renames it
        world.barrier()
    if out_dir is not None and world.is_main:
        if ckpt is not None:  # one found by scanning (a `.tmp-step-N`) goes back to step-N, `latest` to it
            promote(ckpt)
        if ckpt is None:  # a run that never reached its first checkpoint starts again from scratch
            (out_dir / "metrics.jsonl").unlink(missing_ok=True)
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "config.yaml").write_text(_resolved_yaml(recipe))  # on --force the new values rule
        run.metrics.trackers = open_trackers(recipe.log, out_dir, recipe.name, flat_hparams(recipe.to_dict()),
                                             run.step if ckpt is not None else None)
    if ckpt is not None:  # after the trackers open: they see its event too
        follow_new_length(run, old_total)
    world.barrier()
    run.threads_before = set_threads(recipe.train.threads)  # last: nothing after it can fail and leave it set
    return run


RUN_FILES = ("config.yaml", "checkpoints", "metrics.jsonl", "summary.json", LOCK)  # what marks a run directory


def foreign_run_dir(path: Path) -> str | None:
    """Why an existing, non-empty `--out` is not a run directory to train into (None when it is one)."""
    return foreign_contents(path, RUN_FILES, "a tinylm run", "choose a new or empty --out (a run never "
                            "overwrites files it did not write)")


def recipe_for_run(out_dir: Path, overrides: list[str] | None = None) -> Recipe:
    """The resolved recipe a run directory was trained with (its config.yaml), with `--set` overrides."""
    path = Path(out_dir) / "config.yaml"
    if not path.exists():
        raise UserError(f"{out_dir} is not a tinylm run (no config.yaml): give a run directory from `tinylm train`")
    return recipe_from_dict(apply_overrides(read_config_yaml(out_dir), overrides or []))


def read_config_yaml(out_dir: Path) -> dict:
    """A run's config.yaml (its resolved recipe) as a mapping; empty or corrupt is a UserError."""
    out_dir = Path(out_dir)
    return read_yaml(out_dir / "config.yaml", f"it is the run's resolved recipe: restore it, or resume with the recipe "
                     f"itself and --force (`tinylm train RECIPE --out {shlex.quote(str(out_dir))} --resume --force`)")
