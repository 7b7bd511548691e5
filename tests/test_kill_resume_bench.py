"""bench/kill_resume.py (issue 16): real SIGKILLs in the windows the issue names, each resumed into the run an
uninterrupted one makes. Slow: four child processes of tinylm train."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

BENCH = Path(__file__).resolve().parents[1] / "bench" / "kill_resume.py"


def test_kills_before_the_first_and_after_the_last_checkpoint_resume_equal():
    done = subprocess.run([sys.executable, str(BENCH), "--kills", "2", "--methods", "forget"], capture_output=True,
                          text=True, check=True, timeout=300)
    result = json.loads(done.stdout)
    cases = result["methods"]["forget"]["cases"]
    assert [c["kill"] for c in cases][0] == "metrics:1" and cases[1]["kill"].startswith("saved:")
    assert result["kills"] == result["equal"] == 2, cases
