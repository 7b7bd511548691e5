"""The rule that keeps the suite standing on the repository alone: a test reads ../shared/data only when
marked `shared_data`, and such a test is skipped, with the reason, where the folder is absent."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

CONFTEST = Path(__file__).with_name("conftest.py")
TESTS = '''
import pytest

@pytest.fixture
def corpus(shared_data):
    return shared_data / "corpora"

@pytest.mark.shared_data
def test_marked(shared_data):
    assert shared_data.is_dir()

def test_unmarked(shared_data):
    pass

def test_unmarked_through_a_fixture(corpus):
    pass

def test_plain():
    pass

def test_unmarked_reading_by_a_path_of_its_own():
    from pathlib import Path
    data = Path(__file__).resolve().parents[2] / "shared" / "data"
    if data.is_dir():
        list(data.iterdir())
'''


def _pytest(tmp_path: Path, with_shared: bool) -> str:
    """Run the tests above beside our conftest in a repository at tmp_path/repo; its ../shared/data is
    tmp_path/shared/data."""
    repo = tmp_path / "repo"
    (repo / "tests").mkdir(parents=True)
    shutil.copyfile(CONFTEST, repo / "tests" / "conftest.py")
    (repo / "tests" / "test_rule.py").write_text(TESTS)
    (repo / "pytest.ini").write_text("[pytest]\naddopts = --import-mode=importlib --strict-markers\n"
                                     "markers =\n    shared_data: reads ../shared/data\n")
    if with_shared:
        (tmp_path / "shared" / "data").mkdir(parents=True)
    done = subprocess.run([sys.executable, "-m", "pytest", "-rfEs", "-p", "no:cacheprovider", "tests"], cwd=repo,
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "COLUMNS": "400"})
    return done.stdout + done.stderr


def _outcomes(output: str) -> dict[str, int]:
    """The counts of pytest's closing line (plugins of the environment may print warnings after it)."""
    closing = [line for line in output.splitlines() if re.match(r"=+ .*\d+ (passed|failed|skipped|errors?)", line)]
    return {word: int(n) for n, word in re.findall(r"(\d+) (passed|failed|skipped|errors?)\b", closing[-1])}


@pytest.mark.parametrize("with_shared", [False, True])
def test_unmarked_readers_of_shared_data_error_and_marked_ones_skip_without_it(tmp_path, with_shared):
    out = _pytest(tmp_path, with_shared)
    if with_shared:
        assert _outcomes(out) == {"passed": 2, "errors": 2, "failed": 1}, out
        assert re.search(r"test_unmarked_reading_by_a_path_of_its_own read \S+/shared/data without "
                         r"@pytest.mark.shared_data", out), out
    else:
        assert _outcomes(out) == {"passed": 2, "errors": 2, "skipped": 1}, out
        reason = r"SKIPPED \[1\] tests/test_rule.py:\d+: needs the full real data in \S+/shared/data, which is absent"
        assert re.search(reason, out), out
    for name in ("test_unmarked", "test_unmarked_through_a_fixture"):
        assert re.search(rf"test_rule.py::{name} requests the shared_data fixture without @pytest.mark.shared_data",
                         out), out
