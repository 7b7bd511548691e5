"""`tinylm runs`: the run index lists what the run directories say, and reads again only what changed.

Synthetic run directories (the files `tinylm train` writes, by hand) for every status and for the cache's
behaviour; one real tiny run (the session's `trained_run`) and one real lock holder in another process."""

import json
import os
import shutil
import sqlite3
import subprocess
import sys

import pytest
import yaml

from tinylm.cli.main import main
from tinylm.rundir import index as run_index
from tinylm.rundir import run_facts


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    """Each test its own index ($TINYLM_CACHE/run-index.sqlite)."""
    monkeypatch.setenv("TINYLM_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "run-index.sqlite"


def log_line(step, loss=5.0):
    return {"step": step, "tokens": step * 64, "flops": step * 1e9, "lr": 1e-3, "loss": loss, "grad_norm": 1.0}


def eval_line(step, val):
    return {"step": step, "tokens": step * 64, "flops": step * 1e9, "val_loss": val, "val_ppl": 2.718 ** val}


def write_run(path, records, summary=None, checkpoint=True, methods=(), recipe="tiny", evals=None):
    """A run directory as `tinylm train` leaves it: config.yaml, metrics.jsonl, optionally summary.json, a
    sealed checkpoint (its state.json) and eval/*.json."""
    path.mkdir(parents=True)
    (path / "config.yaml").write_text(yaml.safe_dump({"name": recipe, "model": {"name": "L1-2-16x2"},
                                                      "methods": [{m: {}} for m in methods]}))
    (path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    if summary is not None:
        (path / "summary.json").write_text(json.dumps(summary))
    if checkpoint:
        (path / "checkpoints" / "step-00000010").mkdir(parents=True)
        (path / "checkpoints" / "step-00000010" / "state.json").write_text("{}")
    for name, result in (evals or {}).items():
        (path / "eval").mkdir(exist_ok=True)
        (path / "eval" / f"{name}.json").write_text(json.dumps(result))
    return path


def finished_run(path, steps=20, vals=(5.0, 4.2, 4.4), **kwargs):
    records = [log_line(s) for s in range(2, steps + 1, 2)]
    for i, v in enumerate(vals):  # evals spread over the run; the last one is the final
        records.insert(len(records) * (i + 1) // len(vals), eval_line(steps * (i + 1) // len(vals), v))
    records.append({"event": "end", "step": steps, "tokens": steps * 64, "flops": steps * 1e9, "val_loss": vals[-1]})
    summary = {"name": "tiny", "complete": True, "steps": steps, "total_steps": steps, "tokens": steps * 64,
               "flops": steps * 1e9, "val_loss": vals[-1], "wall_s": 75.0}
    return write_run(path, records, summary, **kwargs)


def by_name(listing):
    return {os.path.basename(r["run"]): r for r in listing.rows}


# ------------------------------------------------------------------ status
def test_each_status_is_what_the_files_say(tmp_path):
    from tinylm.output_location import writer_lock

    root = tmp_path / "runs"
    finished_run(root / "finished")
    stop_summary = {"complete": False, "steps": 10, "total_steps": 20, "tokens": 640, "flops": 1e10, "val_loss": None}
    write_run(root / "ctrl-c", [log_line(s) for s in (2, 4, 6, 8, 10)], stop_summary)  # SIGINT: summary, incomplete
    write_run(root / "killed", [log_line(s) for s in (2, 4, 6, 8, 10, 12)])  # kill -9 after a checkpoint
    write_run(root / "died-early", [log_line(2)], checkpoint=False)  # killed before its first checkpoint
    diverged = {"event": "diverged", "step": 12, "tokens": 768, "flops": 1.2e10, "reason": "diverged at step 12"}
    write_run(root / "diverged", [log_line(s) for s in (2, 4, 6, 8, 10)] + [diverged])
    write_run(root / "ended-unsummarised", [log_line(20), eval_line(20, 4.0), {"event": "end", "step": 20}])
    extended = finished_run(root / "extended")  # finished, then --force to a longer duration, killed at step 30
    with open(extended / "metrics.jsonl", "a") as f:
        f.write(json.dumps(log_line(30)) + "\n")
    finished_run(root / "training")
    with writer_lock(root / "training"):  # the very lock `tinylm train` holds, held by this live process
        rows = by_name(run_index.list_runs([root]))
    assert {name: r["status"] for name, r in rows.items()} == {
        "finished": "finished", "ctrl-c": "stopped", "killed": "stopped", "died-early": "failed",
        "diverged": "failed", "ended-unsummarised": "finished", "extended": "stopped", "training": "running"}
    assert rows["extended"]["steps"] == 30 and rows["killed"]["steps"] == 12 and rows["diverged"]["steps"] == 12
    assert run_index.list_runs([root / "training"]).rows[0]["status"] == "finished"  # released: not cached


def test_a_lock_left_by_a_killed_process_is_not_running(tmp_path):
    """A real holder in another process: running while it lives; after kill -9 its lock file stays, stale."""
    run = finished_run(tmp_path / "run", checkpoint=False)
    (run / "summary.json").unlink()
    holder = subprocess.Popen([sys.executable, "-c", "import sys\nfrom tinylm.output_location import writer_lock\n"
                               f"with writer_lock({str(run)!r}):\n    print('held', flush=True)\n    sys.stdin.read()"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert run_index.list_runs([run]).rows[0]["status"] == "running"
    finally:
        holder.kill()
        holder.wait()
    assert (run / "tinylm.lock").exists()
    assert run_index.list_runs([run]).rows[0]["status"] == "finished"  # its `end` event: killed before the summary


# ------------------------------------------------------------------ facts
def test_a_row_has_the_runs_numbers(tmp_path):
    blimp = {"mean": 0.61, "pair_accuracy": 0.6, "paradigm_count": 67}
    finished_run(tmp_path / "a", vals=(5.0, 4.2, 4.4), methods=("sleep", "forget"), recipe="forgetter-sleep-tiny",
                 evals={"blimp": blimp})
    summary_blimp = finished_run(tmp_path / "b", vals=(4.0,))
    s = json.loads((summary_blimp / "summary.json").read_text())
    (summary_blimp / "summary.json").write_text(json.dumps({**s, "blimp_mean": 0.7}))
    rows = by_name(run_index.list_runs([tmp_path]))
    a = rows["a"]
    assert (a["recipe"], a["methods"], a["steps"], a["total_steps"], a["tokens"], a["flops"]) == (
        "forgetter-sleep-tiny", ["sleep", "forget"], 20, 20, 1280, 2e10)
    assert (a["best_val_loss"], a["val_loss"], a["blimp"], a["wall_s"]) == (4.2, 4.4, 0.61, 75.0)
    assert (rows["b"]["best_val_loss"], rows["b"]["blimp"]) == (4.0, 0.7)


def test_the_real_tiny_run_reads_as_its_summary_says(trained_run):
    summary = json.loads((trained_run / "summary.json").read_text())
    vals = [json.loads(x)["val_loss"] for x in (trained_run / "metrics.jsonl").read_text().splitlines()
            if '"val_loss"' in x]
    row = run_index.list_runs([trained_run]).rows[0]
    assert (row["status"], row["recipe"], row["methods"]) == ("finished", "tiny", [])
    assert (row["steps"], row["tokens"], row["flops"], row["val_loss"], row["wall_s"]) == (
        summary["steps"], summary["tokens"], summary["flops"], summary["val_loss"], summary["wall_s"])
    assert row["best_val_loss"] == min(vals) == summary["best_val_loss"] and row["problems"] == []


# ------------------------------------------------------------------ the cache
def test_a_warm_listing_reads_only_the_runs_that_changed(tmp_path, monkeypatch, cache):
    reads = []
    real = run_facts.read_facts
    monkeypatch.setattr(run_facts, "read_facts", lambda run, *a: reads.append(run.name) or real(run, *a))
    for name in ("a", "b", "c"):
        finished_run(tmp_path / name)
    run_index.list_runs([tmp_path])
    assert sorted(reads) == ["a", "b", "c"]
    reads.clear()
    assert run_index.list_runs([tmp_path]).reread == [] and reads == []
    with open(tmp_path / "b" / "metrics.jsonl", "a") as f:  # training went on: a better eval, a later step
        f.write(json.dumps(eval_line(22, 3.9)) + "\n" + json.dumps(log_line(24)))  # the last line still torn
    rows = by_name(run_index.list_runs([tmp_path]))
    assert reads == ["b"] and (rows["b"]["best_val_loss"], rows["b"]["steps"]) == (3.9, 22)
    with open(tmp_path / "b" / "metrics.jsonl", "a") as f:  # the torn line completed: read from where it was
        f.write("\n")
    assert by_name(run_index.list_runs([tmp_path]))["b"]["steps"] == 24 and reads == ["b", "b"]
    shutil.rmtree(tmp_path / "c")  # a removed run leaves the listing and the index
    assert sorted(by_name(run_index.list_runs([tmp_path]))) == ["a", "b"]
    assert sqlite3.connect(cache).execute("SELECT count(*) FROM runs").fetchone()[0] == 2


def test_a_summary_that_keeps_the_best_spares_reading_the_whole_log(tmp_path, monkeypatch):
    """Cold, a finished run's log is read from its last 16 KiB only (here its first eval, 1.0, lies before
    them, and the summary's best, 3.0, is what counts); once the log outgrows the summary, it is read whole."""
    run = finished_run(tmp_path / "run", steps=1200, vals=(1.0, 4.2, 4.4))
    assert (run / "metrics.jsonl").stat().st_size > 3 * run_facts._TAIL_READ
    summary = json.loads((run / "summary.json").read_text())
    (run / "summary.json").write_text(json.dumps({**summary, "best_val_loss": 3.0}))
    assert run_index.list_runs([run]).rows[0]["best_val_loss"] == 3.0
    (run / "summary.json").write_text(json.dumps({**summary, "best_val_loss": 3.1}))  # read again: the tail only
    assert run_index.list_runs([run]).rows[0]["best_val_loss"] == 3.1
    with open(run / "metrics.jsonl", "a") as f:  # continued from where the scan stopped: still the summary's
        f.write(json.dumps(eval_line(1202, 3.5)) + "\n")
    assert run_index.list_runs([run]).rows[0]["best_val_loss"] == 3.1
    monkeypatch.setenv("TINYLM_CACHE", str(tmp_path / "cold"))  # a cold index, a log that outgrew its summary
    assert run_index.list_runs([run]).rows[0]["best_val_loss"] == 1.0


def test_a_rewritten_metrics_file_is_read_whole_again(tmp_path):
    """A resume replaces metrics.jsonl by its lines up to the checkpoint: what was cut is forgotten, even where
    the new file has grown past the old one's length."""
    run = finished_run(tmp_path / "run", vals=(5.0, 3.0, 4.4))
    (run / "summary.json").unlink()
    run_index.list_runs([run])
    lines = [log_line(s, loss=4.9) for s in range(2, 60, 2)] + [eval_line(60, 4.6)]
    tmp = run / "metrics.jsonl.tmp"
    tmp.write_text("".join(json.dumps(r) + "\n" for r in lines))
    tmp.replace(run / "metrics.jsonl")
    row = run_index.list_runs([run]).rows[0]
    assert (row["best_val_loss"], row["val_loss"], row["steps"]) == (4.6, 4.6, 60)
    in_place = "".join(json.dumps(r) + "\n" for r in [eval_line(2, 4.8)] * 40)  # same inode, longer, other bytes
    (run / "metrics.jsonl").write_text(in_place)
    assert run_index.list_runs([run]).rows[0]["best_val_loss"] == 4.8


def test_deleting_or_corrupting_the_index_loses_nothing(tmp_path, cache):
    finished_run(tmp_path / "runs" / "a")
    finished_run(tmp_path / "runs" / "b", vals=(3.5,))
    first = run_index.list_runs([tmp_path / "runs"])
    assert first.index == str(cache) and cache.is_file()
    cache.unlink()
    assert run_index.list_runs([tmp_path / "runs"]).rows == first.rows
    cache.write_bytes(b"not a database at all" * 100)
    again = run_index.list_runs([tmp_path / "runs"])
    assert again.rows == first.rows and again.index == str(cache) and len(again.reread) == 2
    assert sqlite3.connect(cache).execute("SELECT count(*) FROM runs").fetchone()[0] == 2  # rebuilt
    assert run_index.list_runs([tmp_path / "runs"]).reread == []


def test_an_index_that_cannot_be_written_lives_in_memory(tmp_path, monkeypatch):
    """(Tests run as root, where mode bits do not stop a write: a cache path under a file cannot be made.)"""
    (tmp_path / "file").write_text("")
    monkeypatch.setenv("TINYLM_CACHE", str(tmp_path / "file" / "cache"))
    finished_run(tmp_path / "runs" / "a")
    listing = run_index.list_runs([tmp_path / "runs"])
    assert listing.index == ":memory:" and listing.rows[0]["status"] == "finished"


# ------------------------------------------------------------------ the command
@pytest.fixture
def three_runs(tmp_path):
    root = tmp_path / "runs"
    finished_run(root / "sleepy", vals=(4.8, 4.3), methods=("sleep",))
    finished_run(root / "plain", steps=100, vals=(4.6, 4.1))
    write_run(root / "nested" / "killed", [log_line(2), eval_line(2, 6.0), log_line(4)], checkpoint=False)
    return root


def _json(capsys, *argv):
    assert main(["runs", *map(str, argv), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_where_method_sort_and_json(three_runs, capsys):
    names = lambda rows: [os.path.basename(r["run"]) for r in rows]  # noqa: E731
    assert names(_json(capsys, three_runs)) == ["killed", "plain", "sleepy"]  # by path; nested runs found
    assert names(_json(capsys, three_runs, "--sort=-best_val_loss")) == ["killed", "sleepy", "plain"]
    assert names(_json(capsys, three_runs, "--sort", "steps")) == ["killed", "sleepy", "plain"]
    assert names(_json(capsys, three_runs, "--where", "best_val_loss<4.5")) == ["plain", "sleepy"]
    assert names(_json(capsys, three_runs, "--where", "best_val_loss<4.5", "--where", "steps>=100")) == ["plain"]
    assert names(_json(capsys, three_runs, "--where", "status=failed")) == ["killed"]
    assert names(_json(capsys, three_runs, "--where", "flops>=1e11")) == ["plain"]
    assert names(_json(capsys, three_runs, "--where", "tokens>1.5k")) == ["plain"]
    assert names(_json(capsys, three_runs, "--method", "sleep")) == ["sleepy"]
    assert names(_json(capsys, three_runs, "--where", "methods!=sleep")) == ["killed", "plain"]
    assert main(["runs", str(three_runs), "--where", "blimp>0"]) == 0  # no BLiMP yet: no match
    out, err = capsys.readouterr()
    assert out == "" and "none of the 3 runs matches" in err
    row = _json(capsys, three_runs / "plain")[0]
    assert row["run"] == str(three_runs / "plain") and row["path"] == str((three_runs / "plain").resolve())


def test_the_plain_table_is_aligned(three_runs, capsys, monkeypatch):
    monkeypatch.chdir(three_runs)
    assert main(["runs"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:4] == ["run", "recipe", "methods", "status"] and len(lines) == 4
    assert [line.split()[0] for line in lines[1:]] == ["nested/killed", "plain", "sleepy"]
    plain = lines[2].split()
    assert plain[2:8] == ["-", "finished", "100", "6.4k", "100G", "4.1000"]
    col = lines[0].index("status")
    assert [line[col:].split()[0] for line in lines] == ["status", "failed", "finished", "finished"]


@pytest.mark.parametrize("argv, needles", [
    (["--where", "val_lose<4"], ["no field 'val_lose'", "fields: run, recipe", "best_val_loss"]),
    (["--where", "val_loss~4"], ["not a comparison", "OP one of < <= > >= = !="]),
    (["--where", "val_loss<four"], ["'four' is not a number"]),
    (["--where", "recipe<x"], ["recipe is text"]),
    (["--where", "status=done"], ["running, finished, stopped, failed"]),
    (["--sort", "loss"], ["no field 'loss'", "a leading - sorts descending"]),
])
def test_a_bad_query_is_one_line_and_writes_nothing(three_runs, cache, one_line_error, argv, needles):
    one_line_error(["runs", str(three_runs), *argv], *needles)
    assert not cache.parent.exists()  # refused before the index was opened


def test_a_missing_directory_is_one_line(tmp_path, one_line_error):
    one_line_error(["runs", str(tmp_path / "nope")], "does not exist")


def test_a_directory_without_runs_lists_nothing_and_says_so(tmp_path, capsys):
    (tmp_path / "empty" / "notes").mkdir(parents=True)
    assert main(["runs", str(tmp_path / "empty")]) == 0
    out, err = capsys.readouterr()
    assert out == "" and "no runs under" in err and "config.yaml" in err
    assert _json(capsys, tmp_path / "empty") == []


def test_a_damaged_file_is_a_note_not_the_end_of_the_listing(three_runs, capsys):
    (three_runs / "plain" / "summary.json").write_text('{"complete": tr')
    assert main(["runs", str(three_runs), "--json"]) == 0
    out, err = capsys.readouterr()
    assert len(json.loads(out)) == 3 and "plain: summary.json cannot be read (JSONDecodeError)" in err


def test_a_reader_that_leaves_early_ends_the_listing_quietly(three_runs, monkeypatch):
    """`tinylm runs | head`: the pipe closes under the listing; status 0, no traceback (a BrokenPipeError is an
    OSError too, and the full-disk clause used to see it first and re-raise it)."""
    import io

    class ClosedPipe(io.StringIO):
        def write(self, text):
            raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(sys, "stdout", ClosedPipe())
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    assert main(["runs", str(three_runs)]) == 0
