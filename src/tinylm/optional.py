"""Packages beyond tinylm's core, imported in one place so that a missing one reads the same everywhere.

Every feature that needs such a package imports it with ``require``, which returns the module or
ends with one line naming the feature, the package and the command that installs it, e.g.
``tinylm sweep needs optuna, which is not installed: pip install 'tinylm[sweep]'`` (a ``UserError``:
exit status 2 on the command line, no traceback). Without it, a missing package surfaced as a
traceback (``tinylm compare --x flops`` without matplotlib) or as a message naming an extra that no
longer exists.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from tinylm.errors import UserError

# Package -> the extra of pyproject.toml that installs it. None: a dependency of tinylm itself, absent
# only from a broken environment, so the fix is to install the package alone.
EXTRAS: dict[str, str | None] = {
    "transformers": "hf",
    "datasets": "datasets",
    "optuna": "sweep",
    "lm_eval": "lm-eval",
    "tensorboard": "tensorboard",
    "wandb": "wandb",
    "mlflow": "mlflow",
    "matplotlib": None,
}


def install_command(package: str) -> str:
    """The pip command that brings ``package`` (a key of ``EXTRAS``)."""
    extra = EXTRAS[package]
    return f"pip install 'tinylm[{extra}]'" if extra else f"pip install {package}"


def require(module: str, feature: str) -> ModuleType:
    """``importlib.import_module(module)`` (``"optuna"``, ``"matplotlib.figure"``), or a ``UserError`` saying
    that ``feature`` (``"tinylm sweep"``, ``"tinylm compare --x"``) needs the package and how to install it."""
    package = module.split(".")[0]
    if package not in EXTRAS:
        raise ValueError(f"{package} is not an optional package of tinylm (add it to EXTRAS with its extra)")
    try:
        return importlib.import_module(module)
    except ImportError as e:
        # The module itself (or a parent) absent: not installed. Anything else: installed but broken
        # (a dependency of its own missing), and its error says which.
        absent = not e.name or module == e.name or module.startswith(e.name + ".")
        why = "which is not installed" if absent else f"which fails to import ({e})"
        raise UserError(f"{feature} needs {package}, {why}: {install_command(package)}") from e
