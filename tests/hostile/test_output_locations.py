"""Output locations are checked before any work (issue 16, classes 3 and 10): every command that writes.

`--out` naming an existing file, a path under a file, or a read-only directory (a new path in it, or it
itself) used to end in NotADirectoryError / PermissionError / "Read-only file system" tracebacks, some
after minutes of work; a read-only TINYLM_CACHE the same. Now: exit 2, one line naming the path, nothing
created. Also refused: an --out that is a directory holding someone else's files (train, seeds, adapt)
and an output that is or holds its own input (`export --force` onto its source deleted it).
"""

from types import SimpleNamespace

import pytest
import yaml


@pytest.fixture
def ctx(pretrained, tiny_store, tiny_recipe, book, agnews_csv, tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(book("AliceInWonderland")[:5_000])
    return SimpleNamespace(run=pretrained, store=tiny_store, recipe=tiny_recipe(), corpus=corpus, agnews=agnews_csv)


# command -> argv with the output location `out`
COMMANDS = {
    "train": lambda c, out: ["train", c.recipe, "--out", out],
    "train-resume": lambda c, out: ["train", c.recipe, "--out", out, "--resume"],
    "train-seeds": lambda c, out: ["train", c.recipe, "--out", out, "--seeds", "2"],
    "prepare": lambda c, out: ["prepare", c.corpus, "--tokenizer", "gpt2", "--out", out],
    "prepare-force": lambda c, out: ["prepare", c.corpus, "--tokenizer", "gpt2", "--out", out, "--force"],
    "eval": lambda c, out: ["eval", c.run, "--val", c.store, "--out", out],
    "export": lambda c, out: ["export", c.run, "--out", out],
    "export-force": lambda c, out: ["export", c.run, "--out", out, "--force"],
    "surgery": lambda c, out: ["surgery", "reset-embeddings", c.run, "--out", out],
    "adapt": lambda c, out: ["adapt", c.run, "--corpus", c.corpus, "--tokenizer", "bpe:300", "--out", out],
    "data-subset": lambda c, out: ["data", "subset", c.store, "--words", "1k", "--out", out],
    "data-paragraphs": lambda c, out: ["data", "paragraphs", c.store, "--count", "5", "--out", out],
    "sweep": lambda c, out: ["sweep", c.recipe, "--out", out, "--layers", "2:2", "--yes"],
    "demo": lambda c, out: ["demo", "--out", out, "--steps", "2"],
    "finetune": lambda c, out: ["finetune", "L1-2-32x2", "--scratch", "--task", f"agnews:{c.agnews}", "--seeds", "1",
                                "--max-steps", "1", "--quiet", "--out", out],
}


def _file(tmp_path, ro):
    f = tmp_path / "notes.txt"
    f.write_text("mine\n")
    return f, "is a file"


def _under_file(tmp_path, ro):
    f = tmp_path / "notes.txt"
    f.write_text("mine\n")
    return f / "sub" / "out", "which is a file"


def _in_read_only(tmp_path, ro):
    return ro() / "out", "read-only file system" if _root() else "permission denied"


def _read_only_itself(tmp_path, ro):
    return ro(), "read-only file system" if _root() else "permission denied"


def _root():
    import os
    return os.geteuid() == 0


LOCATIONS = {"existing-file": _file, "under-a-file": _under_file, "new-in-read-only": _in_read_only,
             "read-only-itself": _read_only_itself}


@pytest.mark.parametrize("location", sorted(LOCATIONS))
@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_a_bad_output_location_is_one_line_before_any_work(command, location, ctx, assert_user_error, tmp_path,
                                                           request):
    out, needle = LOCATIONS[location](tmp_path, lambda: request.getfixturevalue("read_only_dir"))
    assert_user_error(COMMANDS[command](ctx, out), str(out), needle, watch=[out, tmp_path / "notes.txt"])


PLOTS = {
    "compare": lambda c, plot: ["compare", c.run, "--x", "steps", "--plot", plot],
    "seeds": lambda c, plot: ["seeds", c.run.parent, "--plot", plot],
}


@pytest.mark.parametrize("location", ["a-directory", "under-a-file", "in-read-only"])
@pytest.mark.parametrize("command", sorted(PLOTS))
def test_a_bad_plot_path_is_one_line(command, location, ctx, assert_user_error, tmp_path, request):
    if location == "a-directory":
        plot, needle = tmp_path, "is a directory"
    elif location == "under-a-file":
        plot, needle = _under_file(tmp_path, None)[0].with_suffix(".png"), "which is a file"
    else:
        plot, needle = request.getfixturevalue("read_only_dir") / "plot.png", "cannot write"
    assert_user_error(PLOTS[command](ctx, plot), "--plot", needle, watch=[tmp_path / "notes.txt", plot])


@pytest.mark.parametrize("location", ["a-directory", "under-a-file", "in-read-only", "in-a-missing-directory"])
def test_a_bad_report_path_is_one_line(location, ctx, assert_user_error, tmp_path, request):
    """`tinylm report --out` names one HTML file: it is written into a directory that exists, never made."""
    if location == "a-directory":
        page, needle = tmp_path, f"is a directory: give a file name, e.g. {tmp_path / 'report.html'}"
    elif location == "under-a-file":
        page, needle = _under_file(tmp_path, None)[0].with_suffix(".html"), "which is a file"
    elif location == "in-read-only":
        page, needle = request.getfixturevalue("read_only_dir") / "report.html", "cannot write"
    else:
        page, needle = tmp_path / "reports" / "report.html", "does not exist"
    assert_user_error(["report", ctx.run, "--out", page], "--out", needle,
                      watch=[tmp_path / "notes.txt", page, tmp_path / "reports"])


@pytest.mark.parametrize("location", ["a-file", "under-a-file", "read-only"])
def test_a_cache_that_cannot_hold_the_store_is_one_line(location, assert_user_error, tiny_recipe, tmp_path,
                                                        monkeypatch, request):
    """A recipe with `sources:` prepares its store into TINYLM_CACHE: that must be writable, checked first."""
    if location == "a-file":
        cache, _ = _file(tmp_path, None)
    elif location == "under-a-file":
        cache = _under_file(tmp_path, None)[0]
    else:
        cache = request.getfixturevalue("read_only_dir")
    monkeypatch.setenv("TINYLM_CACHE", str(cache))
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("A few words.\n\nAnd a few more.\n")
    recipe = tiny_recipe(data={"sources": [str(corpus)], "tokenizer": "gpt2", "seq_len": 16})
    data = yaml.safe_load(recipe.read_text())
    data["data"].pop("store")
    recipe.write_text(yaml.safe_dump(data))
    out = tmp_path / "run"
    assert_user_error(["train", recipe, "--out", out], "TINYLM_CACHE", watch=[out, tmp_path / "notes.txt"])


# ---------------------------------------------------------------- class 10: foreign directories, overlaps
@pytest.mark.parametrize("command", ["train", "train-seeds", "adapt", "export-force", "demo", "finetune"])
def test_a_directory_holding_other_files_is_not_taken_over(command, ctx, assert_user_error, tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "config.yaml").write_text("my own notes\n") if command == "adapt" else None
    (out / "thesis.tex").write_text("\\documentclass{article}\n")
    (out / "data.csv").write_text("a,b\n1,2\n")
    assert_user_error(COMMANDS[command](ctx, out), str(out), "choose a", "--out", watch=[out])


def test_a_run_directory_and_an_empty_one_are_accepted(ctx, tmp_path):
    from tinylm.output_location import check_output_dir
    from tinylm.train.build import foreign_run_dir

    assert check_output_dir(ctx.run, accept=foreign_run_dir) == ctx.run
    (tmp_path / "empty").mkdir()
    assert check_output_dir(tmp_path / "empty", accept=foreign_run_dir) == tmp_path / "empty"


def _copy_run(ctx, tmp_path):
    import shutil
    return shutil.copytree(ctx.run, tmp_path / "source-run")


OVERLAPS = {
    # (argv from the copied run `src` and the context, what must stay untouched)
    "export-force-onto-its-input": lambda c, src: ["export", src, "--out", src, "--force"],
    "export-force-onto-the-folder-holding-it": lambda c, src: ["export", src, "--out", src.parent, "--force"],
    "export-onto-its-checkpoint": lambda c, src: ["export", src / "checkpoints" / "latest", "--out",
                                                  src / "checkpoints", "--force"],
    "surgery-onto-its-input": lambda c, src: ["surgery", "reset-embeddings", src, "--out", src],
    "prepare-force-onto-its-source-folder": lambda c, src: ["prepare", src / "config.yaml", "--tokenizer", "gpt2",
                                                            "--out", src, "--force"],
    "data-subset-onto-its-store": lambda c, src: ["data", "subset", c.store, "--words", "1k", "--out", c.store],
    "data-paragraphs-onto-its-store": lambda c, src: ["data", "paragraphs", c.store, "--count", "5", "--out",
                                                      c.store, "--force"],
    "adapt-onto-its-run": lambda c, src: ["adapt", src, "--corpus", c.corpus, "--out", src],
}


@pytest.mark.parametrize("case", sorted(OVERLAPS))
def test_an_output_never_overlaps_its_input(case, ctx, assert_user_error, tmp_path):
    src = _copy_run(ctx, tmp_path)
    argv = OVERLAPS[case](ctx, src)
    needle = "input" if case != "adapt-onto-its-run" else str(src)
    assert_user_error(argv, needle, watch=[src, ctx.store])


@pytest.fixture
def read_only_run(ctx, tmp_path):
    """A copy of the finished run that nobody may write in (a read-only tmpfs for root, modes otherwise)."""
    import os
    import shutil
    import subprocess

    where = tmp_path / "ro-mount"
    where.mkdir()
    if os.geteuid() != 0:
        run = shutil.copytree(ctx.run, where / "run")
        for p in [run, *run.rglob("*")]:
            p.chmod(p.stat().st_mode & ~0o222)
        yield run
        for p in [run, *run.rglob("*")]:
            p.chmod(p.stat().st_mode | 0o200)
        return
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256m", "tmpfs", str(where)], capture_output=True).returncode:
        pytest.skip("root without the right to mount a tmpfs")
    try:
        run = shutil.copytree(ctx.run, where / "run")
        subprocess.run(["mount", "-o", "remount,ro", str(where)], check=True, capture_output=True)
        yield run
    finally:
        subprocess.run(["umount", str(where)], capture_output=True)


def test_eval_into_a_read_only_run_is_one_line_before_scoring(read_only_run, ctx, assert_user_error):
    """Without --out the results go into the run (eval/, summary.json): checked once the model is known,
    before any scoring, with the way out (--out) in the line."""
    assert_user_error(["eval", read_only_run, "--val", ctx.store], "results folder", "--out DIR",
                      watch=[read_only_run])


def test_a_peak_that_cannot_be_cached_is_still_measured(tmp_path, monkeypatch, caplog):
    """The measured-peak cache under TINYLM_CACHE is a cache: unwritable, the run goes on (it used to be an
    OSError traceback at a GPU run's start)."""
    import torch

    from tinylm.compute import peak_flops

    (tmp_path / "notes.txt").write_text("mine\n")
    monkeypatch.setenv("TINYLM_CACHE", str(tmp_path / "notes.txt" / "cache"))
    monkeypatch.delenv("TINYLM_PEAK_FLOPS", raising=False)
    assert peak_flops(torch.device("cpu"), measure=True, size=64) > 0
    assert "could not cache the measured peak" in caplog.text
