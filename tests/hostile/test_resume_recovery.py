"""A run whose `checkpoints/latest` dangles, is garbage or missing, or whose latest folder is gone, resumes from
the newest complete checkpoint on disk, its metrics kept, and ends as an uninterrupted run does (issue 16,
class 11); a torn last line of metrics.jsonl (a crash mid-write) is dropped by a resume and by compare
(class 1). Before: `--resume` silently restarted from step 0 and deleted metrics.jsonl, although an
intact older checkpoint (or a complete `.tmp-step-N`) was on disk.

The trained run (`trained_run`: 12 steps, checkpoints at 4, 8 and 12) is copied per case; each case
damages it as a crash or a user would, resumes it through the CLI, and compares the final weights and the
metrics stream with the uninterrupted run's.
"""

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file

from tinylm.cli.main import main

pytestmark = pytest.mark.usefixtures("no_unpickling")

LAST, BEFORE = "step-00000012", "step-00000008"


def _weights(run, name=LAST):
    return load_file(str(run / "checkpoints" / name / "model.safetensors"))


def _losses(run):
    """(step, loss) of every training line: what a resumed run must repeat exactly."""
    lines = (run / "metrics.jsonl").read_text().splitlines()
    return [(r["step"], r["loss"]) for r in map(json.loads, lines) if "loss" in r and "event" not in r]


def _drop_last(run):
    shutil.rmtree(run / "checkpoints" / LAST)


def _as_tmp(run):
    """Killed between deleting step-12 (saved a second time) and renaming its replacement into place."""
    (run / "checkpoints" / LAST).rename(run / "checkpoints" / f".tmp-{LAST}")


def _pointer(text: bytes):
    return lambda run: (run / "checkpoints" / "latest").write_bytes(text)


CASES = {  # case -> (damage, the checkpoint the resume starts from)
    "latest-dangling": (lambda run: (_drop_last(run), _pointer(b"step-00000099\n")(run)), BEFORE),
    "latest-garbage": (lambda run: (_drop_last(run), _pointer(bytes(range(256)))(run)), BEFORE),
    "latest-escapes": (lambda run: (_drop_last(run), _pointer(b"../../../etc\n")(run)), BEFORE),
    "latest-empty": (lambda run: (_drop_last(run), _pointer(b"")(run)), BEFORE),
    "latest-missing": (lambda run: (_drop_last(run), (run / "checkpoints" / "latest").unlink()), BEFORE),
    "last-folder-deleted": (_drop_last, BEFORE),
    "complete-tmp-left": (_as_tmp, LAST),
    "torn-tmp-left": (lambda run: (_as_tmp(run), (run / "checkpoints" / f".tmp-{LAST}" / "state.json").unlink()),
                      BEFORE),
    "flipped-tmp-left": (lambda run: (_as_tmp(run), (run / "checkpoints" / f".tmp-{LAST}" / "model.safetensors")
                                      .write_bytes(b"\0" * 64)), BEFORE),
}



def _first_save_cut_short(run):
    """Killed while writing the first checkpoint: a torn `.tmp-step-4`, nothing else. The run starts again."""
    root = run / "checkpoints"
    (root / "step-00000004").rename(root / ".tmp-step-00000004")
    (root / ".tmp-step-00000004" / "state.json").unlink()
    (root / "latest").unlink()
    (run / "summary.json").unlink()  # a session writes it last, after a checkpoint
    for name in (BEFORE, LAST):
        shutil.rmtree(root / name)


CASES["first-save-cut-short"] = (_first_save_cut_short, None)

@pytest.mark.parametrize("case", list(CASES))
def test_resume_finds_the_newest_complete_checkpoint(case, trained_run, tmp_path, capsys):
    damage, start = CASES[case]
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    damage(run)
    before = (run / "metrics.jsonl").read_text().splitlines()
    kept = int(start.removeprefix("step-")) if start else 0
    untouched = {p: p.stat().st_mtime_ns for p in (run / "checkpoints").glob(f"*{start}/*")} if start else {}
    assert main(["train", "--out", str(run), "--resume", "--quiet"]) == 0, capsys.readouterr().err
    assert (run / "checkpoints" / "latest").read_text().strip() == LAST
    straight, resumed = _weights(trained_run), _weights(run)
    assert straight.keys() == resumed.keys() and all(torch.equal(straight[k], resumed[k]) for k in straight)
    assert _losses(run) == _losses(trained_run)  # nothing lost, nothing doubled
    # Resumed, not redone from step 0: the lines up to the checkpoint are the very lines written before
    # (a rerun would have logged other times), and the checkpoint it started from was not rewritten.
    lines = (run / "metrics.jsonl").read_text().splitlines()
    old = [line for line in before if json.loads(line).get("step", 0) <= kept]
    assert lines[:len(old)] == old and (not kept or any('"loss"' in line for line in old))
    for path, mtime in untouched.items():
        assert path.name == "state.json" or not path.exists() or path.stat().st_mtime_ns == mtime, path
    assert not list((run / "checkpoints").glob(".tmp-*"))


def test_a_torn_last_metrics_line_is_dropped_on_resume_and_by_compare(trained_run, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # compare --x draws its plot into the working directory
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    _drop_last(run)  # resume from step 8, as after a kill mid-write of a line after it
    text = (run / "metrics.jsonl").read_text()
    (run / "metrics.jsonl").write_text(text + '{"step": 13, "loss": 10.7')
    assert main(["compare", str(run), "--x", "steps", "--json"]) == 0, capsys.readouterr().err
    assert main(["train", "--out", str(run), "--resume", "--quiet"]) == 0, capsys.readouterr().err
    assert _losses(run) == _losses(trained_run)
    assert all(line.endswith("}") for line in (run / "metrics.jsonl").read_text().splitlines())


def test_checkpoints_are_sealed_with_their_checksums(trained_run):
    """state.json, written last, records the SHA-256 of every other file of its checkpoint."""
    import hashlib

    ckpt = trained_run / "checkpoints" / LAST
    table = json.loads((ckpt / "state.json").read_text())["sha256"]
    assert set(table) == {p.name for p in ckpt.iterdir()} - {"state.json"}
    assert all(hashlib.sha256((ckpt / name).read_bytes()).hexdigest() == digest for name, digest in table.items())
