"""A full disk (ENOSPC, or a quota: EDQUOT) is the user's to fix, so it is one line: the path, how much is
free there, how much the write needed where that is known, and what to do. Writers that know what they
were writing (a checkpoint, a metrics line) say so and leave nothing torn; `tinylm.cli.main` turns any
other full-disk OSError into the same line, named by its file or the command's --out.
"""

from __future__ import annotations

import contextlib
import errno
import shutil
from pathlib import Path

from tinylm.errors import UserError

NO_SPACE = frozenset({errno.ENOSPC, errno.EDQUOT})


def is_no_space(error: BaseException) -> bool:
    return isinstance(error, OSError) and error.errno in NO_SPACE


def free_bytes(path) -> int | None:
    """Bytes free to this user on the file system holding `path` (its nearest existing parent)."""
    path = Path(path).absolute()
    for candidate in (path, *path.parents):
        if candidate.exists():
            try:
                return shutil.disk_usage(candidate).free
            except OSError:
                return None
    return None


def human(n: int | float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def no_space(path, needed: int | None = None, fix: str = "run the command again") -> UserError:
    """The one line for a full disk at `path`."""
    free = free_bytes(path)
    where = f"{human(free)} free" if free is not None else "free space unknown"
    need = f", about {human(needed)} needed" if needed else ""
    return UserError(f"no space left on the device holding {path} ({where}{need}): free space there (or write "
                     f"elsewhere), then {fix}")


@contextlib.contextmanager
def disk_space(path, needed=None, fix: str = "run the command again"):
    """Turn a full-disk OSError raised inside into `no_space(path, ...)`; `needed` may be a callable (asked only then)."""
    try:
        yield
    except OSError as e:
        if not is_no_space(e):
            raise
        raise no_space(path, needed() if callable(needed) else needed, fix) from e
