"""Recipes: YAML files that say everything a run does, validated at load.

A recipe has five sections (`data`, `model`, `train`, `eval`, `checkpoint`), a `methods:` list and a
`log:` list of trackers that mirror metrics.jsonl (tinylm.tracking: tensorboard, wandb, mlflow).
Unknown keys are rejected with a did-you-mean; `--set train.lr=3e-4` overrides any key. The
resolved recipe is written into the run directory, and resuming with a different one is refused
unless forced (naming the keys that differ).

Seeds are separate on purpose, so a study can vary one source of randomness at a time:
`train.seed` draws the initial weights and dropout, `data.seed` the order of the training data,
and `eval.seed` the validation windows, which stay fixed so that runs of any seed are scored on
the same tokens (`tinylm train --seeds` varies the first two together unless one is pinned).
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_type_hints

import yaml

from tinylm.data.mlm import MLM_PROBABILITY
from tinylm.errors import UserError
from tinylm.eval import validation
from tinylm.package_files import package_file
from tinylm.precision import PRECISIONS
from tinylm.strict_yaml import load_yaml, read_yaml_file, yaml_problem
from tinylm.tracking import check_sink_names

BUNDLED = package_file("recipes")


@dataclass(frozen=True)
class Range:
    """The values a numeric recipe key may take, checked at load; `why` is said when one is outside."""
    low: float | None = None
    high: float | None = None
    low_open: bool = False              # `low` itself is outside
    high_open: bool = False
    why: str = ""

    def holds(self, value) -> bool:
        if isinstance(value, float) and not math.isfinite(value):
            return False
        return ((self.low is None or (value > self.low if self.low_open else value >= self.low))
                and (self.high is None or (value < self.high if self.high_open else value <= self.high)))

    def __str__(self) -> str:
        parts = []
        if self.low is not None:
            parts.append(f"{'above' if self.low_open else 'at least'} {self.low:g}")
        if self.high is not None:
            parts.append(f"{'below' if self.high_open else 'at most'} {self.high:g}")
        return "a finite number " + " and ".join(parts)


def bounded(default, low=None, high=None, *, low_open=False, high_open=False, why=""):
    """A dataclass field whose value must lie in a `Range` (the recipe is refused at load otherwise)."""
    return field(default=default, metadata={"range": Range(low, high, low_open, high_open, why)})


# Upper bounds: a value past them is a typo (an exponent too many), not an experiment, and would fail far
# later (7 TiB allocated for `batch_size: 1e12`) or never finish. They sit well above any run on one machine.
MAX_SEED = 2**63 - 1          # what torch.manual_seed and numpy's generators take
MAX_STEPS = 2**40             # steps between logs/evals/checkpoints, warmup: ~10^12, beyond any run
MAX_DATA_WORKERS = 64         # batch-computing processes: more only copies the process image again
MAX_BATCH = 65_536            # sequences per micro-batch on one device: larger cannot fit; use grad_accum
MAX_SEQ = 2**20               # tokens per sequence (1M): beyond every model's context
MAX_WINDOWS = 2**20           # validation windows, all held in memory as token ids


@dataclass
class DataSection:
    store: str | None = None            # a prepared token store (`tinylm prepare`) ...
    sources: list[str] | None = None    # ... or corpora to prepare into the cache (`bundled` = shipped corpus)
    tokenizer: str = "gpt2"             # used with `sources`: gpt2 | bert-base-uncased | gpt-neox-20b | bpe:N | wordpiece:N
    docs: str = "paragraph"             # what a document is, for `sources`
    val_fraction: float = bounded(0.05, 0, 1, low_open=True, high_open=True,
                                  why="the share of documents held out for validation")
    sampler: str = "windows"            # windows (FORGETTER) | chunks (BabyLlama) | epochs | mlm (encoders)
    seq_len: int = bounded(128, 1, MAX_SEQ, why="tokens per training sequence")
    seed: int = bounded(0, 0, MAX_SEED)  # data order (the sampler's draws, MLM masks); not the init, not validation
    split_seed: int = bounded(0, 0, MAX_SEED)  # `sources:` only: which documents are validation; kept apart from
                                        # `seed` so runs of any seed validate on the same text
    mlm_probability: float = bounded(MLM_PROBABILITY, 0, 1, low_open=True, high_open=True,
                                     why="the share of tokens masked; BERT's 15%")
    workers: int = bounded(0, 0, MAX_DATA_WORKERS, why="processes computing training batches ahead "
                           "(tinylm.data.prefetch); 0 draws them on the training thread")


@dataclass
class TrainSection:
    duration: str = "1000 steps"        # `10k steps`, `61M tokens`, `2 epochs`
    batch_size: int = bounded(8, 1, MAX_BATCH, why="sequences per micro-batch per process; for larger batches "
                              "raise train.grad_accum")
    grad_accum: int = bounded(1, 1, MAX_BATCH, why="micro-batches per optimizer step")
    lr: float = bounded(1e-3, 0, 1, low_open=True,  # AdamW moves each weight by about lr a step: above 1, by more
                        why="AdamW's peak learning rate, typically 1e-4 to 1e-2")  # than the weights' own size
    weight_decay: float = bounded(0.1, 0, why="decoupled (AdamW): 0 disables it")
    betas: list[float] = field(default_factory=lambda: [0.9, 0.95])  # two, each in [0, 1): checked in _check
    eps: float = bounded(1e-8, 0, 1, low_open=True, why="AdamW's denominator floor, typically 1e-8")
    clip: float = bounded(1.0, 0, why="the max gradient norm; 0 disables clipping")
    schedule: str = "linear"            # linear to zero | cosine | constant
    warmup: int = bounded(0, 0, MAX_STEPS, why="steps of linear warm-up; 0 starts at the peak")
    min_lr_ratio: float = bounded(0.0, 0, 1, why="the final learning rate as a fraction of the peak")
    decay_norms: bool = False           # whether norm weights get weight decay
    decay_biases: bool = False
    decay_embeddings: bool = True       # FORGETTER decays everything HF Trainer decays (embeddings included)
    precision: str = "auto"             # auto (bf16 where the device computes it natively, else fp32: tinylm.precision)
                                        # | fp32 | bf16 (autocast, CPU and CUDA) | fp16 (CUDA, loss scaling)
    compile: bool = False               # torch.compile the model (pays on long runs: CPU compile takes minutes)
    compile_mode: str = "default"       # default | reduce-overhead (CUDA graphs: static shapes) | max-autotune
    device: str = "auto"                # auto | cpu | cuda | cuda:N | mps
    parallel: str = "ddp"               # under torchrun: ddp (every process holds the whole model) | fsdp (each
                                        # holds a shard of weights and optimizer state: tinylm.train.fsdp)
    seed: int = bounded(0, 0, MAX_SEED)  # initialisation and dropout (torch's RNG); data order is data.seed
    log_every: int = bounded(10, 1, MAX_STEPS, why="steps between metrics lines")
    on_nan: str = "stop"                # a NaN/inf loss or grad norm: stop (exit 3, last good checkpoint kept) |
                                        # rollback (to the last checkpoint, lr * on_nan_lr_factor, go on)
    on_nan_lr_factor: float = bounded(0.5, 0, 1, low_open=True, high_open=True,
                                      why="the peak learning rate is multiplied by it at each NaN rollback")
    on_nan_retries: int = bounded(3, 0, 1000, why="NaN rollbacks per session before the run stops")
    threads: int = 0                    # torch threads of this process: 0 = torch's default (every core, right for
                                        # one run alone); several runs on one machine: cores / runs each


@dataclass
class EvalSection:
    every: int = bounded(0, 0, MAX_STEPS, why="steps between validation evals; 0 = only at the end")
    windows: int = bounded(validation.WINDOWS, 1, MAX_WINDOWS,
                           why="fixed seeded validation windows, identical across runs")
    batch_size: int = bounded(validation.BATCH_SIZE, 1, MAX_BATCH, why="validation windows per forward pass")
    seed: int = bounded(validation.SEED, 0, MAX_SEED)  # the windows' seed: not a run seed, so every run is scored alike


@dataclass
class CheckpointSection:
    every: int = bounded(0, 0, MAX_STEPS, why="steps between checkpoints; 0 = only at the end")
    keep: int = bounded(2, 1, MAX_STEPS, why="newest checkpoints kept; at least the one a resume starts from")
    words: list[str] | None = None      # words seen to checkpoint at, kept whatever `keep` says: [1M, 2M, 10M] or
                                        # `babylm` (BabyLM's chck_1M..chck_1000M; `tinylm export --babylm`)


# Keys that say how this machine runs the recipe, not what the run is (threads and data workers set its
# speed, never its numbers; ddp or fsdp, its memory per process, and the gradient's summation order as the
# number of processes does): a resume or the workers of one sweep may differ in them without --force.
MACHINE_KEYS = ("train.threads", "data.workers", "train.parallel")
# Where the metrics are mirrored (`log:`, tinylm.tracking) changes no number of the run: a resume may add
# or drop a tracker without --force.
WATCHING_KEYS = ("log",)

SECTIONS = {"data": DataSection, "train": TrainSection, "eval": EvalSection, "checkpoint": CheckpointSection}


@dataclass
class Recipe:
    name: str = "run"
    description: str = ""
    data: DataSection = field(default_factory=DataSection)
    model: dict = field(default_factory=lambda: {"name": "L2-4-128x4"})
    train: TrainSection = field(default_factory=TrainSection)
    eval: EvalSection = field(default_factory=EvalSection)
    checkpoint: CheckpointSection = field(default_factory=CheckpointSection)
    methods: list = field(default_factory=list)
    log: list = field(default_factory=list)  # trackers mirroring metrics.jsonl: tensorboard | wandb | mlflow

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# Keys a run's config.yaml may hold empty: `resolved_recipe` sets them from the store (an older store may not say)
# or drops them (the MLM rate when the sampler is not `mlm`). Any other key given as empty is a mistake.
RESOLVED_EMPTY = ("data.tokenizer", "data.docs", "data.val_fraction", "data.split_seed", "data.mlm_probability")


def _did_you_mean(key: str, valid) -> str:
    close = difflib.get_close_matches(key, list(valid), n=1)
    return f"did you mean `{close[0]}`?" if close else f"valid keys: {', '.join(sorted(valid))}"


def _coerce(value: Any, typ, where: str):
    """Check (and gently convert) a YAML value against a dataclass field type."""
    text = str(typ)
    if value is None:
        if "None" in text or where in RESOLVED_EMPTY:
            return None
        raise UserError(f"recipe key `{where}` has no value: give one (or leave the key out for its default)")
    if typ is bool or text == "bool":
        if isinstance(value, bool):
            return value
    elif typ is int or text == "int":
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str):  # YAML reads `1e3` as a string
            try:
                value = float(value)
            except ValueError:
                pass
        if isinstance(value, float) and value.is_integer():
            return int(value)
    elif typ is float or text == "float":
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)  # YAML reads `1e-3` as a string
            except ValueError:
                pass
    elif typ is str or text.startswith("str"):
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
    elif text.startswith("list"):
        if isinstance(value, list):
            return [_coerce(v, float, f"{where}[{i}]") if "float" in text else v for i, v in enumerate(value)]
        if isinstance(value, str) and "str" in text:
            return [value]
    else:
        return value
    kind = typ.__name__ if isinstance(typ, type) else text.replace("typing.", "")
    raise UserError(f"recipe key `{where}` has {value!r}, which is not a {kind}")


def _build_section(cls, data, where: str):
    if not isinstance(data, dict):
        raise UserError(f"recipe section `{where}` must be a mapping of keys to values")
    hints = get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in data.items():
        if key not in names:
            raise UserError(f"unknown recipe key `{where}.{key}`: {_did_you_mean(key, names)}")
        kwargs[key] = _coerce(value, hints[key], f"{where}.{key}")
    section = cls(**kwargs)
    for f in dataclasses.fields(cls):
        rng, value = f.metadata.get("range"), getattr(section, f.name)
        if rng is not None and value is not None and not rng.holds(value):
            raise UserError(f"recipe key `{where}.{f.name}` is {value!r}: it must be {rng}"
                            + (f" ({rng.why})" if rng.why else ""))
    return section


def recipe_from_dict(data: dict) -> Recipe:
    if not isinstance(data, dict):
        raise UserError("a recipe must be a YAML mapping with sections data, model, train, eval, checkpoint, methods")
    top = {f.name for f in dataclasses.fields(Recipe)}
    for key in data:
        if key not in top:
            raise UserError(f"unknown recipe key `{key}`: {_did_you_mean(key, top)}")
    kwargs = {k: data[k] for k in ("name", "description") if k in data}
    for key, value in kwargs.items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            kwargs[key] = value = str(value)
        if not isinstance(value, str):
            raise UserError(f"recipe key `{key}` has {value!r}, which is not a string")
    for name, cls in SECTIONS.items():
        kwargs[name] = _build_section(cls, data.get(name) or {}, name)
    model = data.get("model") or {}
    if isinstance(model, str):
        model = {"name": model}
    if not isinstance(model, dict) or "name" not in model:
        raise UserError("recipe section `model` needs `name:` (a preset like `babyllama2-16m` or a spec like `L6-8-512x4`)")
    kwargs["model"] = dict(model)
    methods = data.get("methods") or []
    if not isinstance(methods, list):
        raise UserError("recipe key `methods` must be a list, e.g. `methods: [{sleep: {episode: 10k steps}}]`")
    kwargs["methods"] = methods
    kwargs["log"] = check_sink_names(data.get("log"))
    recipe = Recipe(**kwargs)
    _check(recipe)
    return recipe


def _check(r: Recipe) -> None:
    if (r.data.store is None) == (r.data.sources is None):
        raise UserError("recipe `data` needs exactly one of `store:` (a prepared token store) or `sources:` (corpora to prepare)")
    choices = {"data.sampler": (r.data.sampler, ("windows", "chunks", "epochs", "mlm")),
               "train.precision": (r.train.precision, PRECISIONS),
               "train.schedule": (r.train.schedule, ("linear", "cosine", "constant")),
               "train.on_nan": (r.train.on_nan, ("stop", "rollback")),
               "train.parallel": (r.train.parallel, ("ddp", "fsdp")),
               "train.compile_mode": (r.train.compile_mode, ("default", "reduce-overhead", "max-autotune"))}
    for key, (value, valid) in choices.items():
        if value not in valid:
            raise UserError(f"recipe key `{key}` is {value!r}: choose one of {', '.join(valid)}")
    if r.train.threads < 0:  # the upper bound is the machine's and is checked where the run is built
        raise UserError(f"recipe key `train.threads` is {r.train.threads}: give 0 (torch's default, every core) or "
                        "a number of threads, e.g. 1 for each of several runs sharing a machine")
    betas = r.train.betas
    if not isinstance(betas, list) or len(betas) != 2 or not all(Range(0, 1, high_open=True).holds(b) for b in betas):
        raise UserError(f"recipe key `train.betas` is {betas!r}: give two numbers in [0, 1), AdamW's moment decays, "
                        "e.g. [0.9, 0.95]")
    if r.train.lr * r.train.weight_decay >= 1:
        raise UserError(f"recipe keys `train.lr` ({r.train.lr:g}) and `train.weight_decay` ({r.train.weight_decay:g}): "
                        "decoupled decay scales every weight by 1 - lr * weight_decay each step, which would reach "
                        "zero or below: keep their product below 1 (typical: weight_decay 0.01 to 1)")
    from tinylm.duration import parse_duration
    try:
        parse_duration(r.train.duration)
    except UserError as e:
        raise UserError(f"recipe key `train.duration`: {e}") from None
    from tinylm.train.word_checkpoints import parse_milestones
    parse_milestones(r.checkpoint.words)
    check_run_name(r.name)
    vocab = r.model.get("vocab_size", "auto")
    if vocab not in (None, "auto") and (isinstance(vocab, bool) or not isinstance(vocab, int)
                                         or not 1 <= vocab <= 2**31 - 1):
        raise UserError(f"recipe key `model.vocab_size` is {vocab!r}: give `auto` (the token store's) or a whole "
                        "number of ids, at least the store's vocabulary")
    from tinylm.methods import build_methods  # every method's options, checked now: before any run directory exists
    build_methods(r.methods)


def check_run_name(name: str) -> None:
    """A run's name names it (`runs/<name>/` by default): one path component, never a path that leaves `runs/`."""
    bad = (not name.strip() or name in (".", "..") or any(c in name for c in "/\\\0")
           or any(ord(c) < 32 for c in name) or os.path.isabs(name) or name.startswith("~"))
    if bad:
        raise UserError(f"recipe key `name` is {name!r}: a run name is a name, not a path; use letters, digits, "
                        "`-`, `_` and `.` (e.g. `forgetter-tiny`), and choose where the run goes with --out")


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    """`--set train.lr=3e-4 model.name=L4-4-256x4`: values are parsed as YAML.

    A number indexes a list (`train.betas.1=0.99`, `methods.0.sleep.episode=500`), so one element
    can change (a hyperparameter search does this) without restating the rest.
    """
    data = yaml.safe_load(yaml.safe_dump(data))  # deep copy
    for item in overrides or []:
        if "=" not in item:
            raise UserError(f"--set {item!r}: write KEY=VALUE, e.g. --set train.lr=3e-4")
        key, raw = item.split("=", 1)
        parts = key.strip().split(".")
        node = data
        for i, p in enumerate(parts):
            last = i == len(parts) - 1
            if isinstance(node, list):
                if not p.isdigit() or int(p) >= len(node):
                    raise UserError(f"--set {key}: `{'.'.join(parts[:i]) or p}` is a list of {len(node)}: "
                                    f"index it with 0..{len(node) - 1}")
                p = int(p)
                if last:
                    node[p] = _yaml_value(raw, item)
                elif isinstance(node[p], str):  # `- sleep` in a methods list: its options are empty
                    node[p] = {node[p]: {}}
            elif not isinstance(node, dict):
                raise UserError(f"--set {key}: `{'.'.join(parts[:i])}` is not a section")
            elif last:
                node[p] = _yaml_value(raw, item)
            elif node.get(p) is None:
                node[p] = {}
            node = None if last else node[p]
    return data


def _yaml_value(raw: str, item: str = ""):
    """YAML, except that `3e-4` is a number (YAML 1.1 reads it as a string)."""
    try:
        value = load_yaml(raw)
    except yaml.YAMLError as e:
        raise UserError(f"--set {item or raw}: the value is not valid YAML ({yaml_problem(e)}); quote a string, "
                        "close a list (`[0.9, 0.95]`), e.g. --set train.betas=[0.9,0.95]") from None
    if isinstance(value, str) and re.fullmatch(r"[-+]?[0-9.]+[eE][-+]?[0-9]+", value.strip()):
        return float(value)
    return value


def find_recipe(name_or_path: str) -> Path:
    """A path to a YAML file, or the name of a bundled recipe (`tinylm recipes` lists them)."""
    path = Path(os.path.expanduser(name_or_path))
    if path.is_file():
        return path
    bundled = BUNDLED / f"{name_or_path}.yaml"
    if bundled.is_file():
        return bundled
    names = sorted(p.stem for p in BUNDLED.glob("*.yaml"))
    raise UserError(f"no recipe file {name_or_path!r}: give a path to a YAML file or a bundled recipe "
                    f"({', '.join(names) or 'none'})")


def load_recipe(name_or_path: str, overrides: list[str] | None = None) -> Recipe:
    path = find_recipe(name_or_path)
    data = read_yaml_file(path, "recipe") or {}
    return recipe_from_dict(apply_overrides(data, overrides or []))


def recipe_changes(old: dict, new: dict) -> list[str]:
    """Dotted keys that make `new` another run than `old` (keys of the machine, `MACHINE_KEYS`, and the
    trackers, `WATCHING_KEYS`, aside)."""
    return [k for k in diff_recipes(old, new) if k not in MACHINE_KEYS + WATCHING_KEYS]


def diff_recipes(old: dict, new: dict, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two resolved recipes."""
    keys = []
    for k in sorted(set(old) | set(new)):
        a, b = old.get(k), new.get(k)
        if isinstance(a, dict) and isinstance(b, dict):
            keys += diff_recipes(a, b, f"{prefix}{k}.")
        elif a != b:
            keys.append(f"{prefix}{k}")
    return keys
