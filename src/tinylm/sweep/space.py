"""A hyperparameter search space read from YAML: recipe keys -> distributions.

    train.lr:            {low: 1e-4, high: 3e-3, log: true}   # log-uniform (BabyLlama-2's prior for rates)
    train.warmup:        {low: 0, high: 200, step: 50}         # whole numbers: the recipe's field is an int
    train.betas.1:       {low: 0.95, high: 0.999}              # one element of a list
    train.batch_size:    [8, 16, 32]                           # a list is a categorical choice
    train.schedule:      [linear, cosine]
    model.dropout:       {low: 0.0, high: 0.2}
    methods.sleep.threshold: {low: 0.0, high: 0.05}           # a method option (methods.I.NAME.option if listed twice)

Every key is checked against the recipe before a trial runs (unknown keys get a did-you-mean), every
distribution for its shape, and each bound or choice is applied to the base recipe and validated, so
a typo fails in a second rather than as trial 17's crash. Whether a range draws whole numbers follows
the recipe field's type. Seeds are not hyperparameters: seed spread is measured by the stability check.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import get_type_hints

from tinylm.errors import UserError
from tinylm.strict_yaml import read_yaml_file
from tinylm.train.recipe import SECTIONS, Recipe, apply_overrides, recipe_from_dict

RANGE_KEYS = ("low", "high", "log", "step")
SEEDS = ("train.seed", "data.seed", "eval.seed", "data.split_seed")


@dataclass(frozen=True)
class Param:
    """One searched recipe key: a float or int range, or a list of choices."""

    key: str                                 # as the space file writes it (the Optuna parameter's name)
    kind: str                                # float | int | categorical
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple = ()
    path: str = ""                           # the key `apply_overrides` understands (methods by index)

    def suggest(self, trial):
        if self.kind == "categorical":
            return trial.suggest_categorical(self.key, list(self.choices))
        if self.kind == "int":
            return trial.suggest_int(self.key, int(self.low), int(self.high), step=int(self.step or 1), log=self.log)
        return trial.suggest_float(self.key, self.low, self.high, step=self.step, log=self.log)

    def override(self, value) -> str:
        # JSON is YAML that keeps "yes" a string and 1e-05 a number (apply_overrides reads it back).
        return f"{self.path or self.key}={json.dumps(value)}"

    def settings(self) -> dict:
        """JSON-able: stored with the study, so resuming with another space is refused."""
        if self.kind == "categorical":
            return {"choices": list(self.choices)}
        return {"kind": self.kind, "low": self.low, "high": self.high, "log": self.log, "step": self.step}


def load_space(path: str | Path, base: dict, store=None) -> list[Param]:
    path = Path(path).expanduser()
    if not path.is_file():
        raise UserError(f"no search space file {path}: write a YAML mapping of recipe keys to distributions, "
                        "e.g. `train.lr: {low: 1e-4, high: 3e-3, log: true}`")
    data = read_yaml_file(path, "search space")  # UTF-8, each key once (a key given twice was silently the later)
    return parse_space(data, base, str(path), store)


def parse_space(data, base: dict, where: str = "search space", store=None) -> list[Param]:
    """Parameters of a space mapping, checked against `base` (a recipe dict); `store` lets model keys
    be validated with the real vocabulary."""
    if not isinstance(data, dict) or not data:
        raise UserError(f"{where}: write a non-empty YAML mapping of recipe keys to distributions, "
                        "e.g. `train.lr: {low: 1e-4, high: 3e-3, log: true}` or `train.batch_size: [8, 16]`")
    base = _methods_as_mappings(base)
    params = []
    for key, spec in data.items():
        key = str(key)
        path, typ = resolve_key(key, base, where)
        param = _distribution(key, path, typ, spec, where)
        _check_values(param, base, where, store)
        params.append(param)
    return params


def space_overrides(params: list[Param]):
    """The `space(trial)` callback of `run_study`: each parameter drawn, as `--set` overrides."""
    def space(trial) -> list[str]:
        return [p.override(p.suggest(trial)) for p in params]
    return space


def _methods_as_mappings(base: dict) -> dict:
    """`- sleep` and `- sleep: {}` are one method; the second form has options a space can set."""
    methods = [{m: {}} if isinstance(m, str) else m for m in base.get("methods") or []]
    return {**base, "methods": methods}


def resolve_key(key: str, base: dict, where: str) -> tuple[str, object]:
    """(the override path, the field's type) of a dotted recipe key, or a UserError with a did-you-mean."""
    parts = key.split(".")
    section = parts[0]
    bad = f"{where}: unknown recipe key `{key}`"
    if key in SEEDS:
        raise UserError(f"{where}: `{key}` is a seed, not a hyperparameter: leave it to the recipe and measure the "
                        "seed spread with --stability N (or tinylm train --seeds)")
    if section in SECTIONS:
        hints = get_type_hints(SECTIONS[section])
        if len(parts) < 2 or parts[1] not in hints:
            raise UserError(f"{bad}: {_hint(parts[1] if len(parts) > 1 else '', hints, section)}")
        typ = hints[parts[1]]
        if len(parts) == 2:
            return key, typ
        value = (base.get(section) or {}).get(parts[1])
        if len(parts) == 3 and str(typ).startswith("list") and isinstance(value, list):
            if parts[2].isdigit() and int(parts[2]) < len(value):
                return key, float if "float" in str(typ) else object
            raise UserError(f"{bad}: `{section}.{parts[1]}` has {len(value)} elements, index 0..{len(value) - 1}")
        raise UserError(f"{bad}: `{section}.{parts[1]}` has no parts to search")
    if section == "model":
        from tinylm.models import ModelConfig
        hints = {"name": str, **get_type_hints(ModelConfig)}
        if parts[1:] == ["vocab_size"]:
            raise UserError(f"{where}: `model.vocab_size` follows the token store's tokenizer: it cannot be searched")
        if len(parts) != 2 or parts[1] not in hints:
            raise UserError(f"{bad}: {_hint(parts[1] if len(parts) > 1 else '', hints, 'model')}")
        return key, hints[parts[1]]
    if section == "methods":
        return _method_key(key, parts, base, bad)
    top = {f.name for f in dataclasses.fields(Recipe)} - {"name", "description"}
    raise UserError(f"{bad}: a key starts with one of {', '.join(sorted(top))}"
                    + (f" (did you mean `{close[0]}`?)" if (close := difflib.get_close_matches(section, top, n=1))
                       else ""))


def _method_key(key: str, parts: list[str], base: dict, bad: str) -> tuple[str, object]:
    from tinylm.methods.registry import registered
    names = [next(iter(m)) for m in base["methods"]]
    if len(parts) == 4 and parts[1].isdigit():           # methods.I.NAME.option
        index = int(parts[1])
        if index >= len(names) or names[index] != parts[2]:
            raise UserError(f"{bad}: the recipe's methods are {names or 'none'}; index them from 0")
        name, option = parts[2], parts[3]
    elif len(parts) == 3:                                # methods.NAME.option
        name, option = parts[1], parts[2]
        if names.count(name) > 1:
            raise UserError(f"{bad}: the recipe lists `{name}` {names.count(name)} times: write "
                            f"methods.INDEX.{name}.{option} (INDEX from 0)")
        if name not in names:
            close = difflib.get_close_matches(name, names, n=1)
            raise UserError(f"{bad}: the recipe's methods are {names or 'none'}"
                            + (f" (did you mean `{close[0]}`?)" if close else ""))
        index = names.index(name)
    else:
        raise UserError(f"{bad}: write methods.NAME.option, e.g. methods.sleep.threshold")
    methods = registered()
    if name not in methods:
        raise UserError(f"{bad}: the recipe's method {name!r} is not registered (registered: {', '.join(methods)})")
    hints = get_type_hints(methods[name].Config)
    if option not in hints:
        raise UserError(f"{bad}: {_hint(option, hints, f'methods.{name}')}")
    return f"methods.{index}.{name}.{option}", hints[option]


def _hint(name: str, valid, prefix: str) -> str:
    close = difflib.get_close_matches(name, list(valid), n=1)
    return f"did you mean `{prefix}.{close[0]}`?" if close else f"{prefix} has {', '.join(sorted(valid))}"


def _number(value, what: str) -> float:
    if isinstance(value, bool):
        raise ValueError(what)
    try:
        return float(value)  # YAML 1.1 reads 1e-4 as a string
    except (TypeError, ValueError):
        raise ValueError(what) from None


def _distribution(key: str, path: str, typ, spec, where: str) -> Param:
    bad = f"{where}: `{key}`"
    shape = "give a list of choices, e.g. [8, 16, 32], or a range {low: A, high: B[, log: true][, step: S]}"
    if isinstance(spec, list):
        if not spec:
            raise UserError(f"{bad} has an empty list of choices: {shape}")
        if not all(v is None or isinstance(v, (bool, int, float, str)) for v in spec):
            raise UserError(f"{bad}: choices must be plain values (numbers, words, true/false), not lists or mappings")
        if len(set(map(json.dumps, spec))) != len(spec):
            raise UserError(f"{bad} repeats a choice: list each value once")
        return Param(key, "categorical", choices=tuple(spec), path=path)
    if not isinstance(spec, dict):
        raise UserError(f"{bad} is {spec!r}: {shape} (a fixed value belongs in the recipe or --set)")
    for k in spec:
        if k not in RANGE_KEYS:
            close = difflib.get_close_matches(str(k), RANGE_KEYS, n=1)
            raise UserError(f"{bad} has `{k}`: " + (f"did you mean `{close[0]}`?" if close else
                                                     f"a range takes {', '.join(RANGE_KEYS)}"))
    if "low" not in spec or "high" not in spec:
        raise UserError(f"{bad} needs both low and high: {shape}")
    text = str(typ).replace("typing.", "")
    if typ is bool or typ is str or text in ("bool", "str", "str | None", "bool | None"):
        kind = getattr(typ, "__name__", text)
        raise UserError(f"{bad} is a {kind} in the recipe: a range needs a number; give a list of choices instead")
    try:
        low, high = _number(spec["low"], "low"), _number(spec["high"], "high")
        step = _number(spec["step"], "step") if spec.get("step") is not None else None
    except ValueError as e:
        raise UserError(f"{bad}: {e} {spec.get(str(e))!r} is not a number") from None
    log = spec.get("log", False)
    if not isinstance(log, bool):
        raise UserError(f"{bad}: log is {log!r}; write log: true or log: false")
    if not low < high:
        raise UserError(f"{bad}: low ({spec['low']}) must be below high ({spec['high']})")
    if log and low <= 0:
        raise UserError(f"{bad}: a log scale needs low > 0 (it is {spec['low']})")
    if log and step is not None:
        raise UserError(f"{bad}: give log or step, not both")
    if step is not None and not 0 < step <= high - low:
        raise UserError(f"{bad}: step {spec['step']} must be positive and at most high - low")
    whole = typ is int or text in ("int", "int | None")
    if whole and not all(float(v).is_integer() for v in (low, high, step or 1)):
        raise UserError(f"{bad} is a whole number in the recipe: give whole low, high and step")
    return Param(key, "int" if whole else "float", low=int(low) if whole else low, high=int(high) if whole else high,
                 log=log, step=(int(step) if whole else step) if step is not None else None, path=path)


def _check_values(param: Param, base: dict, where: str, store) -> None:
    """Apply each bound or choice to the base recipe and build what a trial would build."""
    values = list(param.choices) if param.kind == "categorical" else [param.low, param.high]
    for value in values:
        try:
            recipe = recipe_from_dict(apply_overrides(base, [param.override(value)]))
            if param.path.startswith("methods."):
                from tinylm.methods import build_methods
                build_methods(recipe.methods)
            if param.path.startswith("model.") and store is not None:
                from tinylm.train.build import model_config
                model_config(recipe, store)
        except UserError as e:
            raise UserError(f"{where}: `{param.key}` = {value!r} makes a bad recipe: {e}") from None
