"""Recipes: YAML files that say everything a run does, validated at load.

A recipe has five sections (`data`, `model`, `train`, `eval`, `checkpoint`) and a `methods:` list.
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
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_type_hints

import yaml

from tinylm.errors import UserError
from tinylm.package_files import package_file
from tinylm.precision import PRECISIONS

BUNDLED = package_file("recipes")


@dataclass
class DataSection:
    store: str | None = None            # a prepared token store (`tinylm prepare`) ...
    sources: list[str] | None = None    # ... or corpora to prepare into the cache (`bundled` = shipped corpus)
    tokenizer: str = "gpt2"             # used with `sources`: gpt2 | bert-base-uncased | gpt-neox-20b | bpe:N | wordpiece:N
    docs: str = "paragraph"             # what a document is, for `sources`
    val_fraction: float = 0.05
    sampler: str = "windows"            # windows (FORGETTER) | chunks (BabyLlama) | epochs | mlm (encoders)
    seq_len: int = 128
    seed: int = 0                       # data order (the sampler's draws, MLM masks); not the init, not validation
    split_seed: int = 0                 # `sources:` only: which documents are validation; kept apart from `seed`
                                        # so runs of any seed validate on the same text
    mlm_probability: float = 0.15       # BERT's 15%


@dataclass
class TrainSection:
    duration: str = "1000 steps"        # `10k steps`, `61M tokens`, `2 epochs`
    batch_size: int = 8                 # sequences per micro-batch per process
    grad_accum: int = 1
    lr: float = 1e-3
    weight_decay: float = 0.1
    betas: list[float] = field(default_factory=lambda: [0.9, 0.95])
    eps: float = 1e-8
    clip: float = 1.0                   # max grad norm; 0 disables
    schedule: str = "linear"            # linear to zero | cosine | constant
    warmup: int = 0                     # steps
    min_lr_ratio: float = 0.0
    decay_norms: bool = False           # whether norm weights get weight decay
    decay_biases: bool = False
    decay_embeddings: bool = True       # FORGETTER decays everything HF Trainer decays (embeddings included)
    precision: str = "auto"             # auto (bf16 where the device computes it natively, else fp32: tinylm.precision)
                                        # | fp32 | bf16 (autocast, CPU and CUDA) | fp16 (CUDA, loss scaling)
    compile: bool = False               # torch.compile the model (pays on long runs: CPU compile takes minutes)
    compile_mode: str = "default"       # default | reduce-overhead (CUDA graphs: static shapes) | max-autotune
    device: str = "auto"                # auto | cpu | cuda | cuda:N | mps
    seed: int = 0                       # initialisation and dropout (torch's RNG); data order is data.seed
    log_every: int = 10                 # steps between metrics lines
    threads: int = 0                    # torch threads of this process: 0 = torch's default (every core, right for
                                        # one run alone); several runs on one machine: cores / runs each


@dataclass
class EvalSection:
    every: int = 0                      # steps between validation evals; 0 = only at the end
    windows: int = 32                   # fixed seeded validation windows, identical across runs
    batch_size: int = 16
    seed: int = 1234                    # the validation windows' seed: not a run seed, so every run is scored alike


@dataclass
class CheckpointSection:
    every: int = 0                      # steps between checkpoints; 0 = only at the end
    keep: int = 2                       # newest checkpoints kept


# Keys that say how this machine runs the recipe, not what the run is (threads set its speed): a resume
# or the workers of one sweep may differ in them without --force.
MACHINE_KEYS = ("train.threads",)

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

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _did_you_mean(key: str, valid) -> str:
    close = difflib.get_close_matches(key, list(valid), n=1)
    return f"did you mean `{close[0]}`?" if close else f"valid keys: {', '.join(sorted(valid))}"


def _coerce(value: Any, typ, where: str):
    """Check (and gently convert) a YAML value against a dataclass field type."""
    if value is None:
        return None
    text = str(typ)
    if typ is bool or text == "bool":
        if isinstance(value, bool):
            return value
    elif typ is int or text == "int":
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
    elif typ is float or text == "float":
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        try:
            return float(value)  # YAML reads `1e-3` as a string
        except (TypeError, ValueError):
            pass
    elif typ is str or text.startswith("str"):
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
    elif text.startswith("list"):
        if isinstance(value, list):
            return [float(v) if "float" in text else v for v in value]
        if isinstance(value, str) and "str" in text:
            return [value]
    else:
        return value
    raise UserError(f"recipe key `{where}` has {value!r}, which is not a {text.replace('typing.', '')}")


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
    return cls(**kwargs)


def recipe_from_dict(data: dict) -> Recipe:
    if not isinstance(data, dict):
        raise UserError("a recipe must be a YAML mapping with sections data, model, train, eval, checkpoint, methods")
    top = {f.name for f in dataclasses.fields(Recipe)}
    for key in data:
        if key not in top:
            raise UserError(f"unknown recipe key `{key}`: {_did_you_mean(key, top)}")
    kwargs = {k: data[k] for k in ("name", "description") if k in data}
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
    recipe = Recipe(**kwargs)
    _check(recipe)
    return recipe


def _check(r: Recipe) -> None:
    if (r.data.store is None) == (r.data.sources is None):
        raise UserError("recipe `data` needs exactly one of `store:` (a prepared token store) or `sources:` (corpora to prepare)")
    choices = {"data.sampler": (r.data.sampler, ("windows", "chunks", "epochs", "mlm")),
               "train.precision": (r.train.precision, PRECISIONS),
               "train.schedule": (r.train.schedule, ("linear", "cosine", "constant")),
               "train.compile_mode": (r.train.compile_mode, ("default", "reduce-overhead", "max-autotune"))}
    for key, (value, valid) in choices.items():
        if value not in valid:
            raise UserError(f"recipe key `{key}` is {value!r}: choose one of {', '.join(valid)}")
    for key, value in {"train.batch_size": r.train.batch_size, "train.grad_accum": r.train.grad_accum,
                       "data.seq_len": r.data.seq_len}.items():
        if value < 1:
            raise UserError(f"recipe key `{key}` must be at least 1 (it is {value})")
    if r.train.threads < 0:  # the upper bound is the machine's and is checked where the run is built
        raise UserError(f"recipe key `train.threads` is {r.train.threads}: give 0 (torch's default, every core) or "
                        "a number of threads, e.g. 1 for each of several runs sharing a machine")


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
                    node[p] = _yaml_value(raw)
                elif isinstance(node[p], str):  # `- sleep` in a methods list: its options are empty
                    node[p] = {node[p]: {}}
            elif not isinstance(node, dict):
                raise UserError(f"--set {key}: `{'.'.join(parts[:i])}` is not a section")
            elif last:
                node[p] = _yaml_value(raw)
            elif node.get(p) is None:
                node[p] = {}
            node = None if last else node[p]
    return data


def _yaml_value(raw: str):
    """YAML, except that `3e-4` is a number (YAML 1.1 reads it as a string)."""
    value = yaml.safe_load(raw)
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
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise UserError(f"recipe {path} is not valid YAML ({str(e).splitlines()[0]}): fix the file") from e
    return recipe_from_dict(apply_overrides(data, overrides or []))


def recipe_changes(old: dict, new: dict) -> list[str]:
    """Dotted keys that make `new` another run than `old` (keys of the machine, `MACHINE_KEYS`, aside)."""
    return [k for k in diff_recipes(old, new) if k not in MACHINE_KEYS]


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
