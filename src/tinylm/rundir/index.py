"""The run index: `tinylm runs` over thousands of run directories in well under a second.

The run directories are the truth; the index is a cache of what each one says (`run_facts`), in one SQLite
file keyed by the run's absolute path, with the (mtime_ns, size) of every file the facts were read from. A
listing walks the directories, stats those files, and reads again only the runs whose stamps changed (a
`metrics.jsonl` that only grew is read from where the last scan stopped); everything else comes from the
index. Deleting the index loses nothing (the next listing rebuilds it); a corrupt one is deleted and
rebuilt without a word; where it cannot be written (a read-only cache, a busy one) the listing works from
an index in memory. Whether a run is `running` is never cached: its lock is checked at every listing.

Where it lives: `$TINYLM_CACHE/run-index.sqlite` (default `~/.cache/tinylm`, beside the prepared stores),
one file for every directory listed. Not inside the runs' directory: results directories are often shared,
synced or read-only, and a hidden database written into them would travel with copies and go stale there;
keyed by absolute path, one index also serves `tinylm runs runs/` and `tinylm runs runs/sweep-3/` alike.

Discovery: a directory is a run when it holds `config.yaml` and `metrics.jsonl` or `summary.json`; the
walk does not descend into runs, hidden directories or symbolic links (no loops, no run listed twice).
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

from tinylm.errors import UserError
from tinylm.rundir import run_facts
from tinylm.rundir.run_facts import LOCK

log = logging.getLogger(__name__)
INDEX_FILE = "run-index.sqlite"
VERSION = 1  # PRAGMA user_version: bump when the facts change shape, and an older index is rebuilt
_SCHEMA = "CREATE TABLE IF NOT EXISTS runs (path TEXT PRIMARY KEY, prints TEXT NOT NULL, facts TEXT NOT NULL, " \
          "scan TEXT)"


def default_index_path() -> Path:
    """`$TINYLM_CACHE/run-index.sqlite` (the cache `tinylm.train.build.cache_dir` names too)."""
    return Path(os.environ.get("TINYLM_CACHE", Path.home() / ".cache" / "tinylm")).expanduser() / INDEX_FILE


class RunIndex:
    """The SQLite cache of run facts. `where` says where it is (`:memory:` when the file could not be used)."""

    def __init__(self, path: Path | None = None):
        self.path = Path(path) if path is not None else default_index_path()
        self.db, self.where = self._open()

    def _open(self) -> tuple[sqlite3.Connection, str]:
        for attempt in range(2):
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                db = sqlite3.connect(self.path, timeout=2)
            except (OSError, sqlite3.Error) as e:  # a read-only or missing place: an index in memory serves
                log.debug("run index %s cannot be opened (%s): using one in memory", self.path, e)
                break
            try:
                _prepare(db)
                return db, str(self.path)
            except sqlite3.DatabaseError as e:  # not a database (torn, overwritten), or cannot be written
                db.close()
                if attempt or isinstance(e, sqlite3.OperationalError) and "readonly" in str(e):
                    break
                log.debug("run index %s is damaged (%s): rebuilding it", self.path, e)
                try:
                    self.path.unlink()
                except OSError:
                    break
        db = sqlite3.connect(":memory:")
        _prepare(db)
        return db, ":memory:"

    def under(self, roots: list[str]) -> dict[str, tuple]:
        """{path: (prints, facts, scan)} of the indexed runs at or under each absolute path in `roots`."""
        rows = {}
        try:
            for root in roots:
                prefix = root.rstrip("/") + "/"
                query = "SELECT path, prints, facts, scan FROM runs WHERE path = ? OR (path >= ? AND path < ?)"
                for path, prints, facts, scan in self.db.execute(query, (root, prefix, prefix[:-1] + "0")):
                    try:
                        rows[path] = (prints, json.loads(facts), json.loads(scan) if scan else None)
                    except ValueError:
                        continue  # a damaged row: the run is read again
        except sqlite3.DatabaseError as e:  # damaged since it was opened: everything is read again
            log.debug("run index %s unreadable (%s)", self.where, e)
        return rows

    def update(self, changed: list[tuple], gone: list[str]) -> None:
        """Store the runs read again (path, prints, facts, scan) and forget the runs no longer there. A write
        that fails (a busy or read-only index) only means reading those runs again next time."""
        if not changed and not gone:
            return
        try:
            with self.db:
                self.db.executemany("INSERT OR REPLACE INTO runs VALUES (?, ?, ?, ?)",
                                    [(p, prints, json.dumps(facts), json.dumps(scan) if scan is not None else None)
                                     for p, prints, facts, scan in changed])
                self.db.executemany("DELETE FROM runs WHERE path = ?", [(p,) for p in gone])
        except sqlite3.Error as e:
            log.debug("run index %s not updated (%s)", self.where, e)

    def close(self) -> None:
        self.db.close()


def _prepare(db: sqlite3.Connection) -> None:
    version = db.execute("PRAGMA user_version").fetchone()[0]
    if version != VERSION:
        with db:
            db.execute("DROP TABLE IF EXISTS runs")
            db.execute(_SCHEMA)
            db.execute(f"PRAGMA user_version = {VERSION}")
    db.execute("PRAGMA synchronous = OFF")  # a cache: a torn write after a power cut is rebuilt, not mourned


# ------------------------------------------------------------------ discovery
def _roots(dirs) -> list[tuple[str, str]]:
    """(as given, absolute) for each directory to list; a missing path or a file is the user's mistake."""
    out = []
    for raw in dirs:
        path = Path(os.path.expanduser(str(raw)))
        if not path.exists():
            raise UserError(f"{raw} does not exist: give directories that hold runs (default: the current one)")
        if not path.is_dir():
            raise UserError(f"{raw} is a file, not a directory: give directories that hold runs (or a run directory)")
        out.append((str(raw), str(path.resolve())))
    return out


def find_runs(given: str, root: str) -> list[tuple[str, str, dict]]:
    """(shown path, absolute path, {name: DirEntry}) of each run at or under `root`, in path order."""
    found, stack = [], [(given, root)]
    while stack:
        shown, directory = stack.pop()
        try:
            with os.scandir(directory) as it:
                entries = {e.name: e for e in it}
        except OSError:
            continue  # unreadable: nothing there can be listed
        if run_facts.is_run(entries):
            found.append((shown, directory, entries))
            continue
        for name in sorted(entries, reverse=True):
            e = entries[name]
            if not name.startswith(".") and e.is_dir(follow_symlinks=False):
                stack.append((os.path.normpath(os.path.join(shown, name)), e.path))
    return found


# ------------------------------------------------------------------ the listing
@dataclass
class Listing:
    rows: list[dict]                                # one per run: run_facts' facts, its status, where it is
    reread: list[str] = field(default_factory=list)  # the runs whose files were read this time
    index: str = ""                                 # where the index is (":memory:" when it could not be kept)


def list_runs(dirs=(".",), index_path: Path | None = None) -> Listing:
    """Every run at or under `dirs`, read from its files where they changed since the index saw them."""
    roots = _roots(dirs)
    index = RunIndex(index_path)
    try:
        cached = index.under([absolute for _, absolute in roots])
        rows, changed, seen = [], [], set()
        for given, absolute in roots:
            for shown, path, entries in find_runs(given, absolute):
                if path in seen:
                    continue  # the same run under two of the directories given
                seen.add(path)
                try:
                    prints = run_facts.fingerprint(entries)
                except OSError:
                    continue  # removed while we looked
                key = json.dumps(prints, sort_keys=True)
                hit = cached.get(path)
                if hit is not None and hit[0] == key:
                    facts = hit[1]
                else:
                    facts, scan = run_facts.read_facts(Path(path), prints, hit[2] if hit else None)
                    changed.append((path, key, facts, scan))
                status = run_facts.status(path, facts, LOCK in entries)
                rows.append({"run": shown, "path": path, "status": status, **facts})
        index.update(changed, [p for p in cached if p not in seen])
        return Listing(rows, [c[0] for c in changed], index.where)
    finally:
        index.close()
