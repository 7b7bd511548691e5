"""The wheel a package index would serve holds every file tinylm reads at run time.

What it must hold is derived from the code, not copied by hand: every file in the source package,
and every `package_file(...)` the code asks for (found by reading the calls out of the source).
Built offline (`--no-build-isolation`) from a copy of the tree, so the checkout stays clean.
"""

import ast
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "src" / "tinylm"


def _source_files() -> set[str]:
    """Every file of the source package, as the wheel names it (tinylm/...)."""
    return {str(p.relative_to(PACKAGE.parent)) for p in PACKAGE.rglob("*")
            if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"}


def package_file_requests() -> list[tuple[str, str]]:
    """(source file, requested path) for every `package_file("a", "b")` call with literal arguments."""
    requests = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None)) == "package_file":
                assert all(isinstance(a, ast.Constant) for a in node.args), \
                    f"{path}: package_file takes literal parts, so this test can check them"
                requests.append((str(path.relative_to(REPO)), "/".join(a.value for a in node.args)))
    return requests


@pytest.fixture(scope="module")
def wheel_file(tmp_path_factory) -> Path:
    tree = tmp_path_factory.mktemp("tree")
    shutil.copy(REPO / "pyproject.toml", tree)
    shutil.copy(REPO / "README.md", tree)
    shutil.copytree(REPO / "src", tree / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    dist = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(tree), "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(dist)], check=True, capture_output=True, timeout=300)
    (built,) = dist.glob("tinylm-*.whl")
    return built


@pytest.fixture(scope="module")
def wheel(wheel_file) -> zipfile.ZipFile:
    return zipfile.ZipFile(wheel_file)


def test_the_code_asks_for_its_shipped_files_through_package_file():
    requested = {path for _, path in package_file_requests()}
    assert {"recipes", "assets/tokenizers", "assets/corpus"} <= requested, requested


def test_the_wheel_holds_every_file_of_the_source_package(wheel):
    missing = sorted(_source_files() - set(wheel.namelist()))
    assert not missing, f"left out of the wheel (add them to package-data in pyproject.toml): {missing}"


def test_every_file_the_code_asks_for_is_in_the_wheel(wheel):
    names = set(wheel.namelist())
    for where, path in package_file_requests():
        inside = [n for n in names if n == f"tinylm/{path}" or n.startswith(f"tinylm/{path}/")]
        assert inside, f"{where} asks for {path}, which the wheel does not hold"


@pytest.mark.slow
def test_an_installed_wheel_trains_a_bundled_recipe_from_another_directory(wheel_file, tmp_path):
    """What a user of `pip install tinylm` does: no source tree anywhere near, recipes by name.
    The venv borrows this interpreter's packages (torch, ...) but its own tinylm is the wheel's."""
    import os

    venv, elsewhere = tmp_path / "venv", tmp_path / "elsewhere"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", str(wheel_file)], check=True,
                   capture_output=True, timeout=300)
    elsewhere.mkdir()
    env = {**os.environ, "TINYLM_CACHE": str(tmp_path / "cache"), "PYTHONPATH": ""}

    def tinylm(*argv):
        done = subprocess.run([str(venv / "bin" / "tinylm"), *argv], cwd=elsewhere, env=env, capture_output=True,
                              text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-2000:]
        return done.stdout

    where = subprocess.run([str(python), "-c", "import tinylm; print(tinylm.__file__)"], cwd=elsewhere, env=env,
                           capture_output=True, text=True, check=True).stdout
    assert Path(where.strip()).is_relative_to(venv), where
    assert "forgetter-tiny" in tinylm("models", "--recipes")
    tinylm("train", "forgetter-tiny", "--out", "run", "--set", "train.duration=6 steps", "--set", "eval.every=0")
    assert (elsewhere / "run" / "summary.json").is_file()
