"""What one run directory says about its run: the row `tinylm runs` lists, and its status.

A run directory is a directory holding `config.yaml` and `metrics.jsonl` or `summary.json` (what `tinylm
train` writes first). Its facts come from the files the index keys it by (`FINGERPRINTED`):

- `config.yaml`: the recipe's name and its methods;
- `summary.json` (written when a session ends): complete or not, steps, tokens, FLOPs, final val loss,
  wall time, and the BLiMP mean `tinylm eval` merges into it;
- `eval/*.json`: the BLiMP mean where the summary lacks it (a resumed session rewrites the summary);
- `metrics.jsonl`: the counters of a session still writing, the last record (an `end` or `diverged`
  event), and the best val loss where the summary does not keep it (runs from before it did). Where the
  summary keeps it and is not older than the log, only the log's last 16 KiB are read; otherwise it is
  scanned whole, as bytes, parsing only the lines that matter. Then incrementally: a scan remembers where
  it stopped, and a file that only grew (the same inode and the same bytes where the scan stopped: a resume
  replaces the file, training appends to it) is read from there on;
- `checkpoints/`: whether a checkpoint to resume from exists (its directory's mtime moves when one lands).

Status, in this order:

- **running**: `RUN/tinylm.lock` names a live process (`tinylm train` holds it for a whole session; a
  holder on another host cannot be checked from here and counts as live). Checked at every listing, never
  cached: a process can die without touching a file.
- **failed**: the last record of `metrics.jsonl` is a `diverged` event (a NaN/inf loss or gradient norm
  that `train.on_nan` stopped at; `tinylm train` exited 3), or the run never completed and holds no
  checkpoint: it died before its first one (a crash, kill -9), so nothing can resume it.
- **finished**: `summary.json` says `complete: true` (and no later step was logged since), or the last record
  of `metrics.jsonl` is the `end` event (it ended and was killed before writing its summary; `--resume`
  writes it).
- **stopped**: not complete, with a checkpoint to resume from: Ctrl-C or SIGTERM (a summary with
  `complete: false`) or killed mid-session. `tinylm train --out RUN --resume` continues it.

A file that cannot be read (torn, not JSON, not YAML) does not stop the listing: the facts it would give
are left empty and a note naming the file is kept with the run.
"""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path

from tinylm.output_location import LOCK, live_writer

CONFIG, METRICS, SUMMARY, EVAL, CHECKPOINTS = "config.yaml", "metrics.jsonl", "summary.json", "eval", "checkpoints"
FINGERPRINTED = (CONFIG, METRICS, SUMMARY)  # plus eval/*.json and the checkpoints/ directory itself
STATUSES = ("running", "finished", "stopped", "failed")
_STEP_DIR = re.compile(r"^step-\d+$")
_TAIL_READ = 16384  # bytes of metrics.jsonl a cold scan reads from its end when summary.json keeps the best val loss
_TAIL = 32  # bytes of metrics.jsonl a scan remembers where it stopped, to tell a grown file from a rewritten one


def is_run(names) -> bool:
    """Whether a directory holding `names` is a run directory."""
    return CONFIG in names and (METRICS in names or SUMMARY in names)


def _stamp(entry: os.DirEntry) -> list[int]:
    st = entry.stat()
    return [st.st_mtime_ns, st.st_size]


def fingerprint(entries: dict[str, os.DirEntry]) -> dict[str, list[int]]:
    """(mtime_ns, size) of each file the facts are read from, given the run directory's entries by name.
    Taken before the files are read: a file that changes in between is read again next time."""
    out = {name: _stamp(entries[name]) for name in FINGERPRINTED if name in entries}
    if CHECKPOINTS in entries and entries[CHECKPOINTS].is_dir():
        out[CHECKPOINTS] = _stamp(entries[CHECKPOINTS])
    if EVAL in entries and entries[EVAL].is_dir():
        with os.scandir(entries[EVAL].path) as it:
            for e in it:
                if e.name.endswith(".json") and e.is_file():
                    out[f"{EVAL}/{e.name}"] = _stamp(e)
    return out


# ------------------------------------------------------------------ metrics.jsonl, scanned as bytes
def _number(value):
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return value
    return None


def scan_metrics(path: Path, before: dict | None = None, tail_only: bool = False) -> dict:
    """What `metrics.jsonl` says (best and last val loss, the last record's counters and what it was: `log`
    or an event's name), continuing `before` (a previous scan of the same file) when the file only grew.
    `tail_only`: a new scan reads only the file's last lines (`start` says where it began; 0: the whole file)."""
    with open(path, "rb") as f:
        st = os.fstat(f.fileno())
        fresh = {"ino": st.st_ino, "continued": False, "start": 0, "offset": 0, "best_val_loss": None, "val_loss": None, "step": None,
                 "tokens": None, "flops": None, "last_record": None, "tail": ""}
        scan, data = fresh, None
        if before and before.get("ino") == st.st_ino and 0 < before.get("offset", 0) <= st.st_size:
            seen = bytes.fromhex(before.get("tail", ""))  # the bytes the last scan ended on: still there?
            f.seek(before["offset"] - len(seen))
            data = f.read()
            if data[:len(seen)] == seen:
                scan, data = {**before, "continued": True}, data[len(seen):]
        if scan is fresh:
            start = max(0, st.st_size - _TAIL_READ) if tail_only else 0
            f.seek(start)
            data = f.read()
            cut = data.find(b"\n") + 1 if start else 0  # a tail begins mid-line: from the next line on
            if start and not cut:  # no whole line in the tail: read it all
                f.seek(0)
                data, start = f.read(), 0
            scan["start"] = scan["offset"] = start + cut
            data = data[cut:]
    end = data.rfind(b"\n") + 1  # a torn last line (a crash, or a write in progress) is read next time
    lines = [line for line in data[:end].split(b"\n") if line.strip()]
    for i, line in enumerate(lines):
        last = i == len(lines) - 1
        if not (last or b'"val_loss"' in line):
            continue  # a plain log line: only the last one's counters matter
        try:
            record = json.loads(line)
        except ValueError:
            continue  # a damaged line: the listing is not the place to refuse it (a resume will)
        if not isinstance(record, dict):
            continue
        val = _number(record.get("val_loss"))
        if val is not None:
            scan["val_loss"] = val
            scan["best_val_loss"] = val if scan["best_val_loss"] is None else min(scan["best_val_loss"], val)
        if last:
            scan["last_record"] = record.get("event", "log")
            for key in ("step", "tokens", "flops"):
                scan[key] = _number(record.get(key))
    scan["offset"] += end
    scan["tail"] = (bytes.fromhex(scan["tail"]) + data[max(0, end - _TAIL):end])[-_TAIL:].hex()
    return scan


# ------------------------------------------------------------------ the other files
def _read_json(path: Path, problems: list) -> dict:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        problems.append(f"{path.name} cannot be read ({type(e).__name__})")
        return {}
    return value if isinstance(value, dict) else {}


def _recipe(path: Path, problems: list) -> dict:
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when present: 10x faster on a cold index
    try:
        config = yaml.load(path.read_text(encoding="utf-8"), Loader=loader)
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        problems.append(f"{CONFIG} cannot be read ({type(e).__name__})")
        return {"recipe": None, "methods": []}
    config = config if isinstance(config, dict) else {}
    methods = []
    for entry in config.get("methods") or []:
        if isinstance(entry, str):
            methods.append(entry)
        elif isinstance(entry, dict) and len(entry) == 1:
            methods.append(str(next(iter(entry))))
    name = config.get("name")
    return {"recipe": str(name) if name is not None else None, "methods": methods}


def _blimp(run: Path, summary: dict, prints: dict, problems: list):
    if _number(summary.get("blimp_mean")) is not None:
        return summary["blimp_mean"]
    for name in sorted(prints):
        if name.startswith(f"{EVAL}/blimp") and name.endswith(".json"):
            value = _number(_read_json(run / name, problems).get("mean"))
            if value is not None:
                return value
    return None


def _has_checkpoint(run: Path) -> bool:
    """A `step-N` directory sealed by its state.json (written last): something a resume can start from."""
    try:
        with os.scandir(run / CHECKPOINTS) as it:
            return any(_STEP_DIR.match(e.name) and os.path.isfile(os.path.join(e.path, "state.json")) for e in it)
    except OSError:
        return False


def read_facts(run: Path, prints: dict, scan_before: dict | None = None) -> tuple[dict, dict | None]:
    """(facts, metrics scan) of the run at `run` whose files have the fingerprint `prints`."""
    problems: list[str] = []
    facts = {"recipe": None, "methods": []}
    if CONFIG in prints:
        facts.update(_recipe(run / CONFIG, problems))
    summary = _read_json(run / SUMMARY, problems) if SUMMARY in prints else {}
    summary_best = _number(summary.get("best_val_loss"))
    scan = None
    if METRICS in prints:
        try:
            # summary.json keeps the best val loss: the log's last lines say the rest, unless it is older than them
            scan = scan_metrics(run / METRICS, scan_before, tail_only=summary_best is not None)
            if not scan["continued"] and scan["start"] and (_number(scan["step"]) or 0) > (_number(summary.get("steps"))
                                                                                         or -1):
                scan = scan_metrics(run / METRICS)
        except OSError as e:
            problems.append(f"{METRICS} cannot be read ({type(e).__name__})")
    scan_ = scan or {}
    # A summary older than the log (a session after it was killed, or extends a finished run) speaks for
    # the steps it saw, not for the run now: the log's last record does.
    stale = (_number(scan_.get("step")) or 0) > (_number(summary.get("steps")) or -1)
    now = {"steps": scan_["step"], "tokens": scan_.get("tokens"), "flops": scan_.get("flops"),
           "val_loss": scan_.get("val_loss")} if stale else summary
    # the whole log's best when it was read whole; else the summary's and what the log says since
    bests = [b for b in (scan_.get("best_val_loss"), None if scan_.get("start") == 0 else summary_best)
             if b is not None]
    facts.update(
        complete=summary.get("complete") is True and not stale, ended=scan_.get("last_record") == "end",
        diverged=scan_.get("last_record") == "diverged", checkpoint=_has_checkpoint(run),
        steps=_number(now.get("steps")), total_steps=_number(summary.get("total_steps")),
        tokens=_number(now.get("tokens")), flops=_number(now.get("flops")),
        best_val_loss=min(bests) if bests else None,
        val_loss=_number(now.get("val_loss")) if _number(now.get("val_loss")) is not None else scan_.get("val_loss"),
        blimp=_blimp(run, summary, prints, problems), wall_s=_number(summary.get("wall_s")), problems=problems)
    return facts, scan


def status_at_rest(facts: dict) -> str:
    """finished, stopped or failed: what the files say when no process is writing the run."""
    if facts["diverged"]:
        return "failed"
    if facts["complete"] or facts["ended"]:
        return "finished"
    return "stopped" if facts["checkpoint"] else "failed"


def status(run: Path | str, facts: dict, has_lock: bool) -> str:
    """The run's status now: `running` while a live process holds its lock (checked only where a lock file is)."""
    if has_lock and live_writer(run) is not None:
        return "running"
    return status_at_rest(facts)


__all__ = ["FINGERPRINTED", "LOCK", "STATUSES", "fingerprint", "is_run", "read_facts", "scan_metrics", "status",
           "status_at_rest"]
