"""The README's short tour runs as written, one command after another, in an empty directory.

What a new user types is read from the README itself, so the tour cannot drift from the code. Only
sizes shrink: each training gets a few steps (and its methods' cycles shrink with it), evaluations
`--limit`, the sweep a two-step budget and two trials. `data/...` stands for the user's copies of
public data; here it points at the repository's own slices of the same files (the bundled Gutenberg
books, tests/fixtures), so the tour runs in a clone with nothing beside it.
"""

import glob
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures"
BOOKS = REPO / "src" / "tinylm" / "assets" / "corpus"

# Every training: a few steps, with evaluation and checkpoints inside them.
TINY_TRAINING = ["train.duration=6 steps", "train.log_every=1", "eval.every=3", "eval.windows=4",
                 "checkpoint.every=3"]
# A recipe's methods count in steps of its full length: their cycles shrink with it.
TINY_METHODS = {
    "forgetter-sleep-tiny": ["train.duration=12 steps", "methods.0.sleep.episode=3 steps"],
    "gaff-tiny-af": ["methods.0.forget.every=2", "methods.0.forget.end=4", "train.warmup=0"],
    "grow-tiny": ["train.duration=12 steps", "methods.0.grow.incremental=8 steps"],
    "gpt2-tiny": ["train.warmup=1"],
}


def tour_commands(readme: str) -> list[list[str]]:
    """The shell lines of the README's tour block, split as a shell would (comments dropped)."""
    tour = readme.split("## A short tour", 1)[1]
    block = tour.split("```sh\n", 1)[1].split("```", 1)[0].replace("\\\n", " ")
    return [argv for argv in (shlex.split(line, comments=True) for line in block.splitlines()) if argv]


def _with_tiny_sizes(argv: list[str]) -> list[str]:
    """`argv` as the tour writes it, with only its sizes shrunk."""
    argv = list(argv)
    if "train" in argv:  # tinylm train, or torchrun ... -m tinylm.cli.main train
        i = argv.index("train")
        recipe = argv[i + 1] if len(argv) > i + 1 and not argv[i + 1].startswith("-") else None
        if recipe is not None:  # a resumed run keeps the sizes its config.yaml holds
            for key in TINY_TRAINING + TINY_METHODS.get(recipe, []):
                argv += ["--set", key]
    elif argv[1] == "eval":
        argv += ["--limit", "4"]
    elif argv[1] == "adapt":
        argv += ["--duration", "4 steps"]
    elif argv[1] == "sweep":
        argv[argv.index("--budget") + 1] = "2 steps"
        argv += ["--trials", "2", "--set", "eval.windows=4"]
    if "--at" in argv:  # a step of the reference run, now 6 steps long
        argv[argv.index("--at") + 1] = "6"
    return argv


def _data_folder(root: Path) -> None:
    """data/ as the tour names it, pointing at the repository's slices of the same public files."""
    links = {"gutenberg": sorted(BOOKS.glob("*.txt.gz")), "german": [FIXTURES / "german" / "grimm-2-head.txt"],
             "blimp": sorted((FIXTURES / "blimp").glob("*.jsonl")),
             "hellaswag": [(FIXTURES / "hellaswag" / "val-first30.txt", "val.txt")]}
    for folder, files in links.items():
        (root / "data" / folder).mkdir(parents=True)
        for item in files:
            source, name = item if isinstance(item, tuple) else (item, item.name)
            (root / "data" / folder / name).symlink_to(source)


@pytest.mark.slow
def test_the_readme_tour_runs_as_written(tmp_path, monkeypatch, capsys):
    from tinylm.cli.main import main

    commands = tour_commands((REPO / "README.md").read_text())
    assert len(commands) >= 20 and all(c[0] in ("tinylm", "torchrun") for c in commands), commands
    _data_folder(tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TINYLM_CACHE", str(tmp_path / "cache"))
    for argv in commands:
        argv = _with_tiny_sizes(argv)
        argv = [m for a in argv for m in (sorted(glob.glob(a)) if "*" in a else [a])]  # the shell's glob
        if argv[0] == "torchrun":
            done = subprocess.run([sys.executable, "-m", "torch.distributed.run", *argv[1:]], capture_output=True,
                                  text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=600)
            assert done.returncode == 0, (argv, done.stderr[-3000:])
            continue
        code = main(argv[1:])
        out, err = capsys.readouterr()
        assert code == 0, (shlex.join(argv), err[-3000:])
        if argv[1:3] == ["compare", "runs/gpt2-tiny"]:
            assert "equal" in out.lower() or "equal" in err.lower(), out
    assert (tmp_path / "exported" / "af-hf" / "config.json").is_file()
    assert (tmp_path / "runs" / "grow" / "summary.json").is_file()
    assert list((tmp_path / "evals" / "ensemble").iterdir())
    assert list((tmp_path / "sweeps" / "heads").glob("ranking.json"))


def test_the_tour_writes_nothing_outside_its_own_folders():
    """No /tmp paths or files that no command of the tour makes (my-recipe.yaml, runs/t1)."""
    made = set()
    for argv in tour_commands((REPO / "README.md").read_text()):
        assert not any(a.startswith("/") for a in argv), argv
        out = argv[argv.index("--out") + 1] if "--out" in argv else None
        for arg in argv:
            if arg != out and arg.startswith(("runs/", "stores/")) and "*" not in arg:
                assert arg in made, f"{shlex.join(argv)}: {arg} is made by no earlier command of the tour"
            if arg.startswith("data.store="):
                assert arg.split("=", 1)[1] in made, argv
        made.add(out)
