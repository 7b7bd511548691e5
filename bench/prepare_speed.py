"""Benchmark `tinylm prepare`: tokens/s with GPT-2 on the shared Gutenberg books, and peak memory
on a synthetic corpus of a gigabyte or more. Prints JSON.

    python bench/prepare_speed.py                       # Gutenberg, default workers, 3 runs
    python bench/prepare_speed.py --workers 0 1 2 3     # compare in-process (Rust threads) vs processes
    python bench/prepare_speed.py --synthetic-gb 1      # + peak RSS on >= 1 GB (written to a temp dir, removed)

Each measured run is a fresh `tinylm prepare` process (the CLI's own `run`), so times include
interpreter start-up and worker start-up. Peak memory is reported three ways: the main process's
and the largest worker's peak RSS (getrusage), and the peak of their sum sampled from /proc.
The machine is shared: the load average at start is recorded, and CPU seconds (which contention
inflates much less than wall time) are reported beside wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
GUTENBERG = REPO.parent / "shared" / "data" / "corpora" / "gutenberg"


def _child_main(report: str, argv: list[str]) -> int:
    """Run the prepare command in this process and write its resource usage to ``report``."""
    from tinylm.cli import prepare

    parser = argparse.ArgumentParser(prog="tinylm")
    prepare.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    status = args.func(args)
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    Path(report).write_text(json.dumps({
        "peak_rss_main_mb": me.ru_maxrss / 1024,
        "peak_rss_largest_worker_mb": kids.ru_maxrss / 1024,
        "cpu_seconds": me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime,
    }))
    return int(status or 0)


def _tree_rss_mb(pid: int) -> float:
    """Resident memory of a process and all its descendants, from /proc."""
    total, stack = 0, [pid]
    while stack:
        p = stack.pop()
        try:
            with open(f"/proc/{p}/status") as f:
                total += next((int(line.split()[1]) for line in f if line.startswith("VmRSS:")), 0)
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    stack.extend(int(c) for c in f.read().split())
        except (FileNotFoundError, ProcessLookupError, ValueError):
            continue
    return total / 1024


def measure(sources: list[str], out: Path, workers: int | None, extra: list[str] = ()) -> dict:
    report = out.parent / f"{out.name}.usage.json"
    argv = ["prepare", *sources, "--tokenizer", "gpt2", "--out", str(out), "--force", *extra]
    if workers is not None:
        argv += ["--workers", str(workers)]
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, __file__, "--child", str(report), "--", *argv],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = [0.0]

    def sample():
        while proc.poll() is None:
            peak[0] = max(peak[0], _tree_rss_mb(proc.pid))
            time.sleep(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    stdout, stderr = proc.communicate()
    seconds = time.perf_counter() - started
    sampler.join()
    if proc.returncode != 0:
        raise SystemExit(f"prepare failed ({proc.returncode}): {stderr.strip()[-2000:]}")
    usage = json.loads(report.read_text())
    report.unlink()
    meta = json.loads((out / "meta.json").read_text())
    tokens = meta["counts"]["tokens"]
    return {
        "workers": workers if workers is not None else "default",
        "seconds": round(seconds, 2),
        "tokens": tokens,
        "tokens_per_s": round(tokens / seconds),
        "cpu_seconds": round(usage["cpu_seconds"], 2),
        "tokens_per_cpu_s": round(tokens / usage["cpu_seconds"]),
        "peak_rss_main_mb": round(usage["peak_rss_main_mb"], 1),
        "peak_rss_largest_worker_mb": round(usage["peak_rss_largest_worker_mb"], 1),
        "peak_rss_tree_sampled_mb": round(peak[0], 1),
    }


def synthetic_corpus(directory: Path, gigabytes: float, file_mb: int = 128) -> int:
    """Repeat the Gutenberg books into files of ``file_mb`` MB until ``gigabytes`` GB are written."""
    books = b"\n\n".join(p.read_bytes() for p in sorted(GUTENBERG.glob("*.txt")))
    target, written, n = int(gigabytes * (1 << 30)), 0, 0
    while written < target:
        size = min(file_mb << 20, target - written)
        with open(directory / f"part-{n:04d}.txt", "wb") as f:
            left = size
            while left > 0:
                chunk = books[:left]
                f.write(chunk)
                left -= len(chunk)
        written += size
        n += 1
    return written


def main() -> int:
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        return _child_main(sys.argv[2], sys.argv[4:])
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workers", nargs="*", type=int, default=None, help="worker counts to compare (default: the default)")
    p.add_argument("--repeats", type=int, default=3, help="runs per setting on Gutenberg (best and median reported; 0 skips Gutenberg)")
    p.add_argument("--synthetic-gb", type=float, default=0.0, help="also measure a synthetic corpus this large")
    p.add_argument("--tmp", default=tempfile.gettempdir(), help="where temporary corpora and stores go")
    args = p.parse_args()

    import tokenizers

    import tinylm

    result = {
        "benchmark": "tinylm prepare, GPT-2 tokenizer, paragraph documents",
        "machine": {"cpus": os.cpu_count(), "usable_cpus": len(os.sched_getaffinity(0)),
                    "load_avg_at_start": [round(x, 2) for x in os.getloadavg()],
                    "python": platform.python_version(), "tokenizers": tokenizers.__version__,
                    "tinylm": tinylm.__version__},
        "target_tokens_per_s": 1_000_000,
    }
    work = Path(tempfile.mkdtemp(prefix="tinylm-prepare-bench-", dir=args.tmp))
    try:
        files = sorted(GUTENBERG.glob("*.txt"))
        runs = []
        for workers in (args.workers or [None]) if args.repeats > 0 else []:
            settings = [measure([str(GUTENBERG)], work / "gutenberg", workers) for _ in range(args.repeats)]
            speeds = sorted(r["tokens_per_s"] for r in settings)
            runs.append({**settings[-1], "tokens_per_s_best": speeds[-1], "tokens_per_s_median": speeds[len(speeds) // 2],
                         "tokens_per_s_all": speeds})
        if runs:
            result["gutenberg"] = {"files": len(files), "bytes": sum(f.stat().st_size for f in files), "runs": runs}
        if args.synthetic_gb > 0:
            corpus = work / "synthetic"
            corpus.mkdir()
            size = synthetic_corpus(corpus, args.synthetic_gb)
            run = measure([str(corpus)], work / "synthetic-store", None, ["--val-fraction", "0.001"])
            result["synthetic"] = {"bytes": size, "gigabytes": round(size / (1 << 30), 2), **run,
                                   "peak_rss_under_1gb": run["peak_rss_tree_sampled_mb"] < 1024}
            result["machine"]["load_avg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
