"""Method lookup by the name used in recipes; a method module registers itself on import."""

from __future__ import annotations

import dataclasses
import difflib
import importlib
import pkgutil

from tinylm.errors import UserError
from tinylm.methods.base import Method, check_one_soft_target_source

_REGISTRY: dict[str, type[Method]] = {}


def register(cls: type[Method]) -> type[Method]:
    """Class decorator: `@register class Sleep(Method): name = "sleep"`."""
    if cls.name in _REGISTRY and _REGISTRY[cls.name] is not cls:
        raise ValueError(f"method name {cls.name!r} registered twice")
    _REGISTRY[cls.name] = cls
    return cls


def _import_all() -> None:
    import tinylm.methods as pkg
    for info in pkgutil.iter_modules(pkg.__path__):
        if info.name not in ("base", "registry"):
            importlib.import_module(f"tinylm.methods.{info.name}")


def registered() -> dict[str, type[Method]]:
    _import_all()
    return dict(_REGISTRY)


def _build_one(entry) -> Method:
    if isinstance(entry, str):
        name, options = entry, {}
    elif isinstance(entry, dict) and len(entry) == 1:
        name, options = next(iter(entry.items()))
        options = options or {}
    else:
        raise UserError(f"method entry {entry!r}: write `- name` or `- name: {{option: value}}`")
    methods = registered()
    if name not in methods:
        hint = difflib.get_close_matches(str(name), methods, n=1)
        valid = ", ".join(sorted(methods)) or "none yet"
        raise UserError(f"unknown method {name!r}" + (f": did you mean {hint[0]!r}?" if hint else "")
                        + f" (registered: {valid})")
    cls = methods[name]
    fields = {f.name for f in dataclasses.fields(cls.Config)}
    for key in options:
        if key not in fields:
            hint = difflib.get_close_matches(key, fields, n=1)
            raise UserError(f"method {name!r} has no option {key!r}"
                            + (f": did you mean {hint[0]!r}?" if hint else f" (options: {', '.join(sorted(fields))})"))
    try:
        return cls(cls.Config(**options))
    except (TypeError, ValueError) as e:
        raise UserError(f"method {name!r}: {e}") from e


def build_methods(entries: list) -> list[Method]:
    methods = [_build_one(e) for e in entries]
    check_one_soft_target_source(methods)  # at recipe time (a sweep checks its space here); Run checks again
    return methods
