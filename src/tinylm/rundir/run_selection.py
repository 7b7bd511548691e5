"""The runs a command was given: paths typed by hand or matched by a shell glob such as `runs/*`.

`tinylm compare` and `tinylm report` take several run directories, and users give them as globs, which
also match what is not a run (a plot, an ensemble's eval output beside the runs). So, among several
paths, one that is not a run is left out with a note; a path that does not exist is still an error (a
typo, not what a glob matched), and so is a single path that is not a run, or a selection without one.
Each command says what a run is to it (`expand`) and how it is called (`usage`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tinylm.errors import UserError


def select_runs(paths, expand: Callable[[Path], list[Path]], *, what: str, give: str, usage: str,
                skipped: list | None = None) -> list[Path]:
    """The runs `paths` stand for, in order: `expand(path)` is a path's runs ([] when it stands for none).

    `what` names what a path should be ("a run (no summary.json) or a directory of runs"), `give` what
    to give instead, `usage` the command line for no paths at all. Notes on what was left out are
    appended to `skipped` when it is a list; with `skipped=None` every path must be a run.
    """
    paths = [Path(raw).expanduser() for raw in paths]
    runs, notes = [], []
    for path in paths:
        if not path.exists():
            raise UserError(f"{path} does not exist: {give}")
        found = expand(path)
        if found:
            runs.extend(found)
        elif skipped is not None and len(paths) > 1:
            notes.append(f"left out {path}: not {what}")
        else:
            raise UserError(f"{path} is not {what}: {give}")
    if not runs:
        if not paths:
            raise UserError(f"no runs given: {usage}")
        named = ", ".join(map(str, paths[:4])) + (f" and {len(paths) - 4} more" if len(paths) > 4 else "")
        raise UserError(f"none of {named} is {what}: {give}")
    if skipped is not None:
        skipped.extend(notes)
    return runs
