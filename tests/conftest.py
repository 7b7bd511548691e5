"""Shared fixtures: the shared data folder beside the repository (CI puts it there)."""

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    assert SHARED_DATA.is_dir(), f"tests need ../shared/data beside the repository (looked in {SHARED_DATA})"
    return SHARED_DATA
