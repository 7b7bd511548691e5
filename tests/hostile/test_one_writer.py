"""One writer per run directory (issue 16, class 10): `tinylm.lock` holds the writer's pid and host.

Before: two `tinylm train` into one --out both exited 0 with 170 interleaved metrics lines for 80 steps
(or one run silently lost), and a `--resume` beside a live run rewrote its files. Now the second is
refused in one line naming the holder; a lock whose process is gone (or that is garbage) is stale and
taken over; the lock is removed when the run ends, also when it fails.
"""

import json
import os
import socket
import subprocess
import sys

import pytest

from tinylm.output_location import LOCK, writer_lock


@pytest.fixture
def live_process():
    """A process that is alive while the test runs (the holder of a lock)."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield proc
    proc.kill()
    proc.wait()


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _lock(run, pid, host=None, **extra):
    run.mkdir(parents=True, exist_ok=True)
    (run / LOCK).write_text(json.dumps({"pid": pid, "host": host or socket.gethostname(), "since": "then",
                                        **extra}))


def test_a_second_trainer_is_refused_naming_the_holder(assert_user_error, tiny_recipe, tmp_path, live_process):
    out = tmp_path / "run"
    _lock(out, live_process.pid)
    assert_user_error(["train", tiny_recipe(), "--out", out], f"pid {live_process.pid}", socket.gethostname(),
                      LOCK, watch=[out])


def test_a_resume_beside_a_live_run_touches_nothing(assert_user_error, pretrained, tmp_path, live_process):
    import shutil

    run = shutil.copytree(pretrained, tmp_path / "run")
    _lock(run, live_process.pid)
    assert_user_error(["train", "--out", run, "--resume"], "another tinylm process", watch=[run])


def test_a_writer_on_another_host_is_refused_too(assert_user_error, tiny_recipe, tmp_path):
    out = tmp_path / "run"
    _lock(out, 1, host="some-other-node")
    assert_user_error(["train", tiny_recipe(), "--out", out], "some-other-node", f"delete {out / LOCK}",
                      watch=[out])


def test_a_seed_study_takes_the_lock_of_each_seed_run(assert_user_error, tiny_recipe, tmp_path, live_process):
    out = tmp_path / "study"
    _lock(out / "seed0", live_process.pid)
    assert_user_error(["train", tiny_recipe(), "--out", out, "--seeds", "2", "--quiet"], "another tinylm process",
                      watch=[out / "seed0", out / "seed1", out / "seeds-summary.json"])


@pytest.mark.parametrize("holder", ["dead-pid", "garbage", "empty", "reused-pid"])
def test_a_stale_lock_is_taken_over_and_removed_at_the_end(holder, tiny_recipe, tmp_path, capsys):
    from tinylm.cli.main import main

    out = tmp_path / "run"
    if holder == "dead-pid":
        _lock(out, _dead_pid())
    elif holder == "reused-pid":  # our own pid, but recorded with another process start: a reused number
        _lock(out, os.getpid(), process_start="1")
    else:
        out.mkdir()
        (out / LOCK).write_text("" if holder == "empty" else "\x00garbage{")
    code = main(["train", str(tiny_recipe()), "--out", str(out), "--quiet", "--set", "train.duration=2",
                 "--set", "eval.every=0", "--set", "checkpoint.every=0"])
    assert code == 0, capsys.readouterr().err
    assert (out / "summary.json").exists() and not (out / LOCK).exists()


def test_the_lock_is_held_while_training_and_gone_after(tiny_recipe, tmp_path):
    from tinylm.runs.execute import execute
    from tinylm.train.recipe import load_recipe

    out = tmp_path / "run"
    seen = []

    def watch(run, record):
        seen.append(json.loads((out / LOCK).read_text()))
    execute(load_recipe(str(tiny_recipe()), ["train.duration=3", "train.log_every=1"]), out, on_step=watch)
    assert seen and all(h["pid"] == os.getpid() and h["host"] == socket.gethostname() for h in seen)
    assert not (out / LOCK).exists()


def test_a_failed_start_leaves_neither_lock_nor_directory(tmp_path):
    from tinylm.errors import UserError

    out = tmp_path / "a" / "b"
    with pytest.raises(UserError):
        with writer_lock(out):
            raise UserError("refused")
    assert not (tmp_path / "a").exists()


def test_two_locks_in_one_process_exclude_each_other(tmp_path):
    from tinylm.errors import UserError

    with writer_lock(tmp_path / "run"):
        with pytest.raises(UserError, match=f"pid {os.getpid()}"):
            with writer_lock(tmp_path / "run"):
                pass
        assert (tmp_path / "run" / LOCK).exists()  # the refused one did not remove the holder's lock
    assert not (tmp_path / "run" / LOCK).exists()
