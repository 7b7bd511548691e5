"""Where a command writes, checked before it does any work: the one place that judges an output location.

Every command that writes (train, prepare, eval, export, surgery, adapt, data, sweep, demo, seeds and
compare plots, and the store cache `TINYLM_CACHE`) asks here first, so that an `--out` naming a file, a
path under a file, a read-only directory or disk, a directory holding something else, or the command's
own input ends in one line naming the path and the fix, with nothing created, instead of a
`NotADirectoryError`/`PermissionError` traceback after minutes of work.

Writability is tried, not guessed from permission bits: a hidden probe file is created and removed in
the nearest existing directory (root ignores mode bits; a read-only mount, an ACL or a full inode table
do not show in them). Nothing here creates the output itself.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import secrets
import socket
import tempfile
import time
from pathlib import Path
from typing import Callable, Iterable, Iterator

from tinylm.errors import UserError

log = logging.getLogger(__name__)
LOCK = "tinylm.lock"  # in a directory being written: who writes it (pid, host), so a second writer is refused


def _nearest_existing(path: Path) -> Path:
    """`path` or its closest ancestor that exists (a file or a directory)."""
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return Path(path.anchor or ".")


def _probe(directory: Path, option: str, path: Path, fix: str = "choose a location you can write to") -> None:
    """Create and remove a hidden file in `directory`: the write the command is about to make, tried early."""
    try:
        fd, name = tempfile.mkstemp(prefix=".tinylm-write-probe-", dir=directory)
    except OSError as e:
        why = "a read-only file system" if e.errno == errno.EROFS else (e.strerror or str(e)).lower()
        raise UserError(f"{option} {path}: cannot write in {directory} ({why}): {fix}") from None
    os.close(fd)
    os.unlink(name)


def check_output_dir(path, option: str = "--out", accept: Callable[[Path], str | None] | None = None,
                     fix: str = "choose a location you can write to") -> Path:
    """The directory a command is about to create or fill, refused unless it can be.

    It may be missing (its nearest existing ancestor must then be a writable directory) or a writable
    directory; `accept(path)`, given an existing non-empty directory, returns why its contents are not
    this command's to write into (or None to accept it).
    """
    path = Path(os.path.expanduser(str(path)))
    if not str(path).strip():
        raise UserError(f"{option} is empty: give a directory path")
    if path.exists() and not path.is_dir():
        raise UserError(f"{option} {path} is a file, not a directory: {fix} (or move the file away)")
    if path.is_symlink() and not path.exists():
        raise UserError(f"{option} {path} is a broken symbolic link: remove it or give another directory")
    base = _nearest_existing(path)
    if not base.is_dir():
        raise UserError(f"{option} {path} lies under {base}, which is a file, not a directory: {fix}")
    _probe(base, option, path, fix)
    if accept is not None and path.is_dir() and any(path.iterdir()):
        why = accept(path)
        if why:
            raise UserError(f"{option} {path} {why}")
    return path


def check_output_file(path, option: str, example: str = "plot.png") -> Path:
    """A file a command is about to write (a plot, a page): not a directory, in a writable directory."""
    path = Path(os.path.expanduser(str(path)))
    if path.is_dir():
        raise UserError(f"{option} {path} is a directory: give a file name, e.g. {path / example}")
    parent = path.parent
    base = _nearest_existing(parent)
    if not base.is_dir():
        raise UserError(f"{option} {path} lies under {base}, which is a file, not a directory: choose a path "
                        "outside it")
    _probe(base, option, path)
    return path


def check_apart(out, inputs: Iterable, option: str = "--out") -> None:
    """An output never overlaps its input: `out` is neither an input nor a folder holding one (a command that
    replaces its output, `export --force` or `prepare --force`, would delete the input first)."""
    out_real = Path(os.path.expanduser(str(out))).resolve()
    for item in inputs:
        if item is None:
            continue
        source = Path(os.path.expanduser(str(item)))
        if not source.exists():
            continue
        source = source.resolve()
        if source == out_real or out_real in source.parents:
            what = "is" if source == out_real else "holds"
            raise UserError(f"{option} {out} {what} the input {item}: write the output somewhere else (an output "
                            "never replaces or contains what it is made from)")


def looks_like(path: Path, names: Iterable[str]) -> bool:
    """Whether a directory holds any of `names` (a run's config.yaml, a store's meta.json, ...)."""
    return any((Path(path) / n).exists() for n in names)


def foreign_contents(path: Path, names: Iterable[str], what: str, fix: str) -> str | None:
    """For `accept`: None when the directory holds one of `names` (it is `what`); otherwise why it is refused."""
    if looks_like(path, names):
        return None
    sample = sorted(p.name for p in Path(path).iterdir())[:3]
    return (f"already holds files that are not {what} ({', '.join(sample)}{', ...' if len(sample) == 3 else ''}): "
            f"{fix}")


# ---------------------------------------------------------------- one writer per directory
def _process_start(pid: int) -> str | None:
    """When process `pid` started (Linux: clock ticks since boot), to tell a live holder from a reused pid."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _holder_alive(holder: dict) -> bool | None:
    """True/False for a holder on this host; None when it cannot be told (another host)."""
    if holder.get("host") != socket.gethostname():
        return None
    pid = holder.get("pid")
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        pass
    started = holder.get("process_start")
    return not (started and _process_start(pid) not in (None, started))


def _read_lock(path: Path) -> dict | None:
    try:
        holder = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError):
        return None  # garbage: nobody can be holding it
    return holder if isinstance(holder, dict) else None


def _try_lock(path: Path, record: dict) -> bool:
    """Create `path` holding `record`, atomically (written under a temporary name, then hard-linked), or False."""
    tmp = path.with_name(f".{path.name}.{record['token']}")
    tmp.write_text(json.dumps(record))
    try:
        os.link(tmp, path)
        return True
    except FileExistsError:
        return False
    finally:
        tmp.unlink(missing_ok=True)


def live_writer(directory) -> dict | None:
    """Who holds `directory/tinylm.lock` now ({pid, host, since, ...}), or None when nobody does: no lock, an
    unreadable one, or one whose process is gone. A holder on another host cannot be checked from here and
    counts as live, as `writer_lock` counts it."""
    holder = _read_lock(Path(os.path.expanduser(str(directory))) / LOCK)
    if not holder or _holder_alive(holder) is False:
        return None
    return holder


@contextlib.contextmanager
def writer_lock(directory, option: str = "--out") -> Iterator[Path]:
    """Hold `directory/tinylm.lock` (pid, host, start) while writing into it; a second writer gets one line.

    A lock whose holder is gone (its pid no longer runs on this host, or is another process now) or that is
    unreadable is stale and taken over. The directory is created if missing; when the body fails, the
    directories created here are removed again if still empty (a refused run leaves nothing).
    """
    directory = Path(os.path.expanduser(str(directory)))
    created = [p for p in (directory, *directory.parents) if not p.exists()]
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / LOCK
    record = {"pid": os.getpid(), "host": socket.gethostname(), "process_start": _process_start(os.getpid()),
              "since": time.strftime("%Y-%m-%d %H:%M:%S"), "token": secrets.token_hex(8)}
    ok = False
    try:
        for _ in range(3):
            if _try_lock(path, record):
                break
            holder = _read_lock(path)
            alive = None if holder is None else (_holder_alive(holder) if holder else False)
            if holder is not None and holder and alive is not False:
                where = f"pid {holder.get('pid')} on {holder.get('host')}, since {holder.get('since')}"
                raise UserError(f"{option} {directory} is being written by another tinylm process ({where}): wait for "
                                f"it to finish or choose another {option}; if that process is gone, delete {path}")
            if holder:
                log.warning("%s: taking over a stale lock of pid %s on %s (that process is gone)", directory,
                            holder.get("pid"), holder.get("host"))
            path.unlink(missing_ok=True)
        else:
            raise UserError(f"{option} {directory}: could not take {path} (another process keeps replacing it); "
                            "make sure only one tinylm writes there")
        yield path
        ok = True
    finally:
        if _read_lock(path) == record:
            path.unlink(missing_ok=True)
        if not ok:
            for p in created:  # deepest first
                try:
                    p.rmdir()
                except OSError:
                    break
