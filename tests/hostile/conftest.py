"""The hostile-user corpus (issue 16): bad inputs over every command, each a user's mistake.

`assert_user_error(argv, *needles, watch=(dirs...))` runs the CLI in-process and checks the whole
contract: exit status 2, exactly one line on stderr holding every needle (the thing named), no
traceback, and no file created, removed or changed under any watched path (the output location; a
path that did not exist must still not exist). Generic on purpose: every table of bad inputs in this
folder uses it.
"""

from __future__ import annotations

from pathlib import Path

import pytest


def snapshot(paths) -> dict:
    """Every file and directory under `paths`, with size and mtime (a changed file shows as a difference)."""
    seen = {}
    for root in paths:
        root = Path(root)
        if not root.exists() and not root.is_symlink():
            seen[str(root)] = None
            continue
        items = [root] + (sorted(root.rglob("*")) if root.is_dir() else [])
        for p in items:
            try:
                st = p.lstat()
            except OSError:
                continue
            seen[str(p)] = (p.is_dir(), st.st_size if not p.is_dir() else 0, st.st_mtime_ns if not p.is_dir() else 0)
    return seen


@pytest.fixture
def assert_user_error(capsys):
    def check(argv, *needles, watch=()):
        from tinylm.cli.main import main

        argv = [str(a) for a in argv]
        capsys.readouterr()
        before = snapshot(watch)
        try:
            code = main(argv)
        except SystemExit as e:  # argparse's usage errors exit from inside main: the same contract
            code = e.code
        err = capsys.readouterr().err.strip()
        assert code == 2, f"exit {code} for {argv}: {err}"
        assert len(err.splitlines()) == 1, err
        assert "Traceback" not in err, err
        for needle in needles:
            assert needle in err, f"{needle!r} not in: {err}"
        after = snapshot(watch)
        changed = sorted(k for k in set(after) | set(before) if after.get(k, "gone") != before.get(k, "gone"))
        assert not changed, f"{argv} left changes behind: {changed}"
        return err
    return check


@pytest.fixture(scope="session")
def pretrained(tmp_path_factory, tiny_store):
    """A tiny finished run to adapt (8 steps), trained once per session."""
    import yaml

    from tinylm.runs.execute import execute
    from tinylm.train.recipe import load_recipe

    root = tmp_path_factory.mktemp("pretrained")
    (root / "tiny.yaml").write_text(yaml.safe_dump({
        "name": "tiny", "data": {"store": str(tiny_store), "seq_len": 16},
        "model": {"name": "L1-2-16x2", "flavour": "llama"},
        "train": {"duration": "8 steps", "batch_size": 2, "precision": "fp32"}, "eval": {"windows": 2}}))
    execute(load_recipe(str(root / "tiny.yaml")), root / "run")
    return root / "run"


@pytest.fixture(scope="session")
def read_only_dir(tmp_path_factory):
    """An empty directory nobody may write in: mode 555 for a normal user; for root (whom modes do not stop),
    a read-only tmpfs mounted there, or the test is skipped where mounting is not allowed."""
    import os
    import subprocess

    d = tmp_path_factory.mktemp("read-only")
    if os.geteuid() != 0:
        d.chmod(0o555)
        yield d
        d.chmod(0o755)
        return
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(d)], capture_output=True)
    if mounted.returncode:
        pytest.skip("root without the right to mount a read-only tmpfs: no read-only directory to test with")
    yield d
    subprocess.run(["umount", str(d)], capture_output=True)


@pytest.fixture(autouse=True)
def _never_unpickle(no_unpickling):
    """Every case here also fails if any command reaches torch.load or pickle.load (tests/conftest.py)."""
    yield
