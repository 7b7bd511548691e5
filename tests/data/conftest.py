"""Fixtures for the data tests: two books of the bundled corpus and a few prepared stores.

Stores are built once per session from a few hundred KB of text so the whole folder stays fast.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import tinylm.cli.main as cli_main

GUTENBERG = ("AliceInWonderland.txt", "PeterPan.txt")


@pytest.fixture(scope="session")
def gutenberg_files(tmp_path_factory, book) -> list[Path]:
    """Alice in Wonderland and Peter Pan as plain .txt files, decompressed from the bundled corpus."""
    d = tmp_path_factory.mktemp("gutenberg")
    for name in GUTENBERG:
        (d / name).write_bytes(book(name.removesuffix(".txt")).encode("utf-8"))
    return [d / name for name in GUTENBERG]


@pytest.fixture(scope="session")
def gpt2_store(tmp_path_factory, gutenberg_files):
    from tinylm.data import prepare_store

    return prepare_store(gutenberg_files, "gpt2", tmp_path_factory.mktemp("stores") / "gpt2", val_fraction=0.05,
                         seed=1, workers=0)


@pytest.fixture(scope="session")
def bert_store(tmp_path_factory, gutenberg_files):
    from tinylm.data import prepare_store

    return prepare_store(gutenberg_files[:1], "bert-base-uncased", tmp_path_factory.mktemp("stores") / "bert",
                         val_fraction=0.05, workers=0)


@pytest.fixture
def cli(monkeypatch):
    """Run `tinylm ...` in-process with only the data commands registered; returns the exit status."""
    monkeypatch.setattr(cli_main, "COMMANDS", ("prepare", "data"))

    def run(*argv: str) -> int:
        return cli_main.main([str(a) for a in argv])

    return run
