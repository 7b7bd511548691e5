"""`write_report(runs, out)`: check, read, draw, then write the page in one atomic step.

The output location and every input are judged before any work (a directory that is not a run, an
`--out` in a read-only or missing place: one line, nothing created), every file is read before the
page is begun, and the page is written under a temporary name and renamed, so a failure at any
point leaves no file and a reader never opens half a page.
"""

from __future__ import annotations

import os
from pathlib import Path

from tinylm.errors import UserError
from tinylm.output_location import check_apart, check_output_file
from tinylm.report.facts import check_inputs, read_inputs
from tinylm.report.page import render


def write_report(runs, out, skipped: list | None = None) -> Path:
    """The page of `runs` at `out`; with `skipped` a list, a non-run among several paths is left out and
    named there (as `tinylm compare` does) instead of refusing the page."""
    paths = check_inputs(runs, skipped)
    out = check_output_file(out, "--out", example="report.html")
    if not out.parent.is_dir():  # a plot's parents may be made; a page is written where the user says
        raise UserError(f"--out {out}: the directory {out.parent} does not exist: create it first, or give a path "
                        "in an existing directory")
    check_apart(out, paths)
    page = render(read_inputs(paths))
    tmp = out.with_name(f".{out.name}.tmp")
    try:
        tmp.write_text(page, encoding="utf-8")
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return out

