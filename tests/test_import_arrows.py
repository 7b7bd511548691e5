"""The design's one-way dependencies, kept by a test: every import in src/tinylm, read with `ast`.

Every `import` and `from ... import` counts, wherever it stands (module top, inside a function, under
`if TYPE_CHECKING`), relative ones resolved, and so do module names given as strings to
`importlib.import_module` or in a package's lazy-export table. An import of a part the table below
does not allow is a forbidden arrow, reported as file:line and the arrow. One kind of arrow is allowed
for type hints alone (TYPE_HINTS_ONLY): a method's hooks receive the training Run, and name its class.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "tinylm"

# Top-level modules that import nothing of tinylm but each other: the floor every part may stand on.
BASE = {"__init__", "errors", "strict_yaml", "disk_space", "lazy_exports", "optional", "output_location",
        "package_files", "precision", "compiling", "cache", "duration"}

# The whiteboard (design.md, "Dependencies point one way"), bottom to top: each part of tinylm and the
# parts it may import besides itself. Anything else is a forbidden arrow. A part not here (a new
# package or top-level module) fails until it is given its place. Parts not written yet are fine.
_STORAGE = {"base", "models", "data", "compute", "rundir", "losses"}  # know nothing of training or evaluation
MAY_IMPORT = {
    "base":     {"base"},
    "models":   {"base"},                                       # specs, modules: no data, no files, no training
    "data":     {"base"},                                       # text -> token store -> batches (validation's too)
    "compute":  {"base"},                                       # FLOPs, MFU
    "rundir":   {"base"},                                       # run directories, checkpoints, metrics, curves, index
    "losses":   {"base"},                                       # cross-entropy, soft targets: functions of tensors
    "loading":  {"base", "models", "rundir"},                   # a model built from a checkpoint
    "tracking": {"base", "rundir"},                             # tracker sinks the loop writes to
    "eval":     _STORAGE | {"loading"},                         # runs on any model: never train, never runs
    "methods":  _STORAGE | {"loading", "eval"},                 # called by the loop with the Run (type hints below)
    "train":    _STORAGE | {"loading", "tracking", "eval", "methods"},  # the loop calls evaluation
    "runs":     _STORAGE | {"loading", "tracking", "eval", "methods", "train"},
    "report":   _STORAGE | {"loading", "eval", "methods", "train", "runs"},  # HTML reports, at the level of runs
    "sweep":    _STORAGE | {"loading", "tracking", "eval", "methods", "train", "runs"},
    "cli":      _STORAGE | {"loading", "tracking", "eval", "methods", "train", "runs", "report", "sweep"},
    "__main__": {"cli"},
}

# Arrows allowed only under `if TYPE_CHECKING:` (never imported when the code runs).
TYPE_HINTS_ONLY = {"methods": {"train"}}

_MODULE_NAME = re.compile(r"tinylm(\.[A-Za-z_][A-Za-z0-9_]*)+")


def part_of(relative: Path) -> str | None:
    """The whiteboard part of a module (path relative to src/tinylm); None when the table lacks it."""
    name = relative.parts[0] if len(relative.parts) > 1 else relative.stem
    if len(relative.parts) == 1 and name in BASE:
        return "base"
    return name if name in MAY_IMPORT else None


def _target_part(module: str, root: Path) -> str:
    """The part a dotted tinylm module name lands in: `tinylm.train.loop` -> train, `tinylm` -> base."""
    head = module.split(".")[1] if "." in module else "__init__"
    if head in BASE:
        return "base"
    if head in MAY_IMPORT or (root / head).is_dir() or (root / f"{head}.py").is_file():
        return head
    return "base"  # a name defined in tinylm/__init__.py (`from tinylm import __version__`)


def _type_checking_lines(tree: ast.AST) -> set[int]:
    """The lines inside `if TYPE_CHECKING:` (or `typing.TYPE_CHECKING`) blocks."""
    lines = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", getattr(node.test, "attr", "")) == "TYPE_CHECKING":
            for inner in node.body:
                lines.update(range(inner.lineno, (inner.end_lineno or inner.lineno) + 1))
    return lines


def imported_modules(tree: ast.AST, relative: Path) -> list[tuple[int, str]]:
    """(line, dotted tinylm module) for every import in a module's syntax tree, wherever it stands."""
    package = ["tinylm", *relative.parts[:-1]]  # what a relative import is relative to
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            if module == "tinylm" or (node.level and not node.module):  # `from tinylm import train`
                found += [(node.lineno, f"{module}.{alias.name}") for alias in node.names]
            else:
                found.append((node.lineno, module))
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) == "import_module":
            found += [(node.lineno, a.value) for a in node.args[:1] if isinstance(a, ast.Constant)
                      and isinstance(a.value, str)]
        elif isinstance(node, ast.Dict):  # a lazy-export table: {"Name": "tinylm.part.module"}
            found += [(v.lineno, v.value) for v in node.values if isinstance(v, ast.Constant)
                      and isinstance(v.value, str) and _MODULE_NAME.fullmatch(v.value)]
    return [(line, m) for line, m in found if m == "tinylm" or m.startswith("tinylm.")]


def forbidden_arrows(root: Path = SRC) -> list[str]:
    """'file:line: part -> part (module)' for every import the table does not allow."""
    problems = []
    for path in sorted(root.rglob("*.py")):
        relative = path.relative_to(root)
        where = path.relative_to(root.parent.parent)
        part = part_of(relative)
        if part is None:
            problems.append(f"{where}: part {relative.parts[0]!r} is not on the whiteboard: add it to MAY_IMPORT "
                            "in tests/test_import_arrows.py with the parts it may import")
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        hints = _type_checking_lines(tree)
        for line, module in imported_modules(tree, relative):
            target = _target_part(module, root)
            if line in hints and target in TYPE_HINTS_ONLY.get(part, ()):
                continue
            if target != part and target not in MAY_IMPORT[part]:
                problems.append(f"{where}:{line}: {part} -> {target} ({module}) is a forbidden arrow; {part} may "
                                f"import {', '.join(sorted(MAY_IMPORT[part])) or 'nothing of tinylm'}")
    return problems


def test_no_module_of_tinylm_imports_against_the_arrows():
    problems = forbidden_arrows()
    assert not problems, "\n".join(problems)


def test_every_kind_of_import_is_seen(tmp_path):
    """The reader misses none: function-local, TYPE_CHECKING, relative, `from tinylm import x`, strings."""
    root = tmp_path / "src" / "tinylm"
    (root / "eval").mkdir(parents=True)
    (root / "train").mkdir()
    (root / "errors.py").write_text("")
    (root / "train" / "loop.py").write_text("")
    (root / "eval" / "a.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "from tinylm.errors import UserError\n"
        "if TYPE_CHECKING:\n    from tinylm.train.loop import train\n"
        "def f():\n    import tinylm.runs.load\n"
        "from ..train import loop\n"
        "from tinylm import train\n"
        "X = {'evaluate': 'tinylm.train.loop'}\n"
        "import importlib\nimportlib.import_module('tinylm.cli.main')\n")
    (root / "newpart").mkdir()
    (root / "newpart" / "b.py").write_text("")
    problems = forbidden_arrows(root)
    arrows = sorted(p.split(": ", 1)[1].split(" (")[0] for p in problems if "eval/a.py" in p)
    lines = sorted(int(p.split(":")[1]) for p in problems if "eval/a.py" in p)
    assert arrows == ["eval -> cli", "eval -> runs"] + ["eval -> train"] * 4
    assert lines == [4, 6, 7, 8, 9, 11]
    assert any("'newpart' is not on the whiteboard" in p for p in problems)


def test_methods_may_name_the_run_in_type_hints_only(tmp_path):
    root = tmp_path / "src" / "tinylm"
    (root / "methods").mkdir(parents=True)
    (root / "train").mkdir()
    (root / "train" / "run.py").write_text("")
    (root / "methods" / "hinted.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from tinylm.train.run import Run\n")
    (root / "methods" / "imported.py").write_text("from tinylm.train.run import Run\n")
    problems = forbidden_arrows(root)
    assert [p.split(":")[0] for p in problems] == ["src/tinylm/methods/imported.py"], problems
