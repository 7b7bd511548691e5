"""A package beyond tinylm's core that is missing ends a command with one line naming it and the install
command (exit 2), never a traceback; and every command's --help works without any of them.

The packages are hidden in this process (`sys.modules[name] = None` makes `import name` raise ImportError)
and tinylm is imported afresh under that, then everything is put back as it was.
"""

import ast
import importlib
import json
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src" / "tinylm"
# What tinylm may use only through tinylm.optional, and packages it must not need at all: hidden together.
NEVER_NEEDED = ("scipy", "pandas", "minicons")


def _optional_packages() -> tuple[str, ...]:
    from tinylm.optional import EXTRAS
    return tuple(EXTRAS)


@pytest.fixture
def hidden():
    """`hidden(*packages)` -> tinylm.cli.main.main, imported afresh with those packages unimportable."""
    saved = dict(sys.modules)

    def hide(*packages):
        for name in list(sys.modules):
            if name == "tinylm" or name.startswith("tinylm."):
                del sys.modules[name]
            elif name.split(".")[0] in packages:
                sys.modules[name] = None
        for package in packages:
            sys.modules[package] = None
        return importlib.import_module("tinylm.cli.main").main

    yield hide
    for name in list(sys.modules):
        if name not in saved and (name.split(".")[0] == "tinylm" or sys.modules[name] is None):
            del sys.modules[name]
    sys.modules.update(saved)


def _hf_dir(tmp: Path) -> Path:
    """What `tinylm eval` takes for a transformers model directory (a config.json and safetensors weights):
    past the checks on its files, reading it needs transformers."""
    import torch
    from safetensors.torch import save_file

    path = tmp / "hf-model"
    path.mkdir()
    (path / "config.json").write_text(json.dumps({"model_type": "llama"}))
    save_file({"lm_head.weight": torch.zeros(2, 2)}, str(path / "model.safetensors"))
    return path


def _runs_with_curves(tmp: Path) -> list[str]:
    runs = []
    for name in ("a", "b"):
        run = tmp / "runs" / name
        run.mkdir(parents=True)
        (run / "summary.json").write_text(json.dumps({"val_loss": 4.0, "complete": True}))
        (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in (
            {"step": 10, "tokens": 640, "flops": 1e9, "loss": 4.2}, {"step": 10, "tokens": 640, "flops": 1e9,
                                                                    "val_loss": 4.0})))
        runs.append(str(run))
    return runs


# (what the user runs, the package it needs, the install command the one line must give)
COMMANDS = [
    (lambda tmp, fx: ["eval", str(_hf_dir(tmp)), "--blimp", str(fx / "blimp" / "adjunct_island.jsonl")],
     "transformers", "pip install 'tinylm[hf]'"),
    (lambda tmp, fx: ["generate", str(_hf_dir(tmp)), "--prompt", "Alice was"], "transformers",
     "pip install 'tinylm[hf]'"),
    (lambda tmp, fx: ["export", str(_hf_dir(tmp)), "--out", str(tmp / "exported")], "transformers",
     "pip install 'tinylm[hf]'"),
    (lambda tmp, fx: ["prepare", "hf:roneneldan/TinyStories", "--tokenizer", "gpt2", "--out", str(tmp / "store")],
     "datasets", "pip install 'tinylm[datasets]'"),
    (lambda tmp, fx: ["sweep", "gpt2-tiny", "--out", str(tmp / "sweep"), "--trials", "1"], "optuna",
     "pip install 'tinylm[sweep]'"),
    (lambda tmp, fx: ["sweep", "gpt2-tiny", "--space", str(tmp / "space.yaml"), "--out", str(tmp / "sweep")],
     "optuna", "pip install 'tinylm[sweep]'"),
    (lambda tmp, fx: ["eval", str(tmp), "--lm-eval", "hellaswag"], "lm_eval", "pip install 'tinylm[lm-eval]'"),
    *[(lambda tmp, fx, t=tracker: ["train", "gpt2-tiny", "--out", str(tmp / "run"), "--log", t], tracker,
       f"pip install 'tinylm[{tracker}]'") for tracker in ("tensorboard", "wandb", "mlflow")],
    (lambda tmp, fx: ["compare", *_runs_with_curves(tmp), "--x", "flops", "--plot", str(tmp / "c.png")],
     "matplotlib", "pip install matplotlib"),
    (lambda tmp, fx: ["seeds", str(Path(_runs_with_curves(tmp)[0]).parent), "--plot", str(tmp / "s.png")],
     "matplotlib", "pip install matplotlib"),
]


@pytest.mark.parametrize("argv, package, install", COMMANDS, ids=[f"{c[1]}-{i}" for i, c in enumerate(COMMANDS)])
def test_a_command_without_its_package_says_what_to_install_in_one_line(argv, package, install, hidden, tmp_path,
                                                                        fixtures, capsys):
    argv = argv(tmp_path, fixtures)
    main = hidden(package)
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert err.startswith(f"tinylm {argv[0]}: error: ") and f"needs {package}, which is not installed" in err, err
    assert err.endswith(install), err


def test_every_optional_package_has_a_command_in_the_table_and_its_extra_in_pyproject():
    from tinylm.optional import EXTRAS, install_command

    assert {package for _, package, _ in COMMANDS} == set(EXTRAS)
    assert all(install == install_command(package) for _, package, install in COMMANDS)
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    base = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    for package, extra in EXTRAS.items():
        where = base if extra is None else extras[extra]
        # a distribution's name against the import name: lm-eval installs lm_eval (PEP 503: - and _ are one)
        assert any(dep.split(">")[0].split("=")[0].split("[")[0].strip().replace("-", "_") == package
                   for dep in where), (package, extra)


def test_src_imports_optional_packages_only_through_require():
    """A new `import optuna` anywhere else would be a traceback again where optuna is missing."""
    optional = set(_optional_packages()) | set(NEVER_NEEDED)
    offenders = []
    for path in sorted(SRC.rglob("*.py")):
        if path.name == "optional.py" and path.parent == SRC:
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module] if isinstance(node, ast.ImportFrom) and node.module and not node.level else [])
            offenders += [f"{path.relative_to(SRC)}:{node.lineno} {n}" for n in names if n.split(".")[0] in optional]
    assert not offenders, "import these through tinylm.optional.require: " + ", ".join(offenders)


def test_every_command_shows_its_help_without_any_optional_package(hidden, capsys):
    main = hidden(*_optional_packages(), *NEVER_NEEDED)
    from tinylm.cli.main import COMMANDS as NAMES  # the fresh module, imported under hiding

    for name in NAMES:
        with pytest.raises(SystemExit) as exit_:
            main([name, "--help"])
        assert exit_.value.code == 0, name
        assert capsys.readouterr().out.startswith(f"usage: tinylm {name}"), name


def test_library_plots_without_matplotlib_say_what_to_install(hidden, tmp_path):
    """The demo's loss plot and the structure sweep's figure are drawn inside longer commands: the same line."""
    hidden("matplotlib")
    from tinylm.errors import UserError
    from tinylm.runs.loss_plot import plot_loss

    run = Path(_runs_with_curves(tmp_path)[0])
    with pytest.raises(UserError, match=r"the loss plot needs matplotlib, which is not installed: pip install "
                                        r"matplotlib$"):
        plot_loss(run)
    with pytest.raises(UserError, match=r"heads-vs-layers plot needs matplotlib"):
        importlib.import_module("tinylm.sweep.plots")


def test_the_demo_without_matplotlib_stops_before_training_or_writing_anything(hidden, tmp_path, capsys):
    """The demo ends with a loss plot: without matplotlib it would train for minutes and then fail."""
    main = hidden("matplotlib")
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--steps", "5"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "tinylm demo: error: tinylm demo (its loss plot) needs matplotlib, which is not installed: " \
                  "pip install matplotlib", err
    assert not out.exists()


def test_a_package_that_is_there_but_broken_is_named_with_its_own_error(monkeypatch, tmp_path):
    """An installed package whose own dependency is missing: the line says so and quotes its error."""
    from tinylm.errors import UserError
    from tinylm.optional import EXTRAS, require

    (tmp_path / "tinylm_test_broken").mkdir()
    (tmp_path / "tinylm_test_broken" / "__init__.py").write_text("import tinylm_test_absent_dependency\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(EXTRAS, "tinylm_test_broken", "hf")
    with pytest.raises(UserError, match=r"^x needs tinylm_test_broken, which fails to import \(No module named "
                                        r"'tinylm_test_absent_dependency'\): pip install 'tinylm\[hf\]'$"):
        require("tinylm_test_broken", "x")
    with pytest.raises(ValueError, match="not an optional package"):
        require("numpy", "x")


def test_training_without_trackers_imports_none_of_their_packages(hidden, tiny_recipe, tmp_path):
    """wandb and mlflow take seconds to import: a run without `log:` must not pay for them (nor need them)."""
    main = hidden("tensorboard", "wandb", "mlflow")
    recipe = tiny_recipe(train={"duration": "2 steps"}, eval={"every": 0, "windows": 2}, checkpoint={"every": 0})
    assert main(["train", str(recipe), "--out", str(tmp_path / "run"), "--quiet"]) == 0
