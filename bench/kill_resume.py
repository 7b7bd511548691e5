"""kill -9 at random points of runs of every method, resume, and compare with an uninterrupted run.

    python bench/kill_resume.py [--kills 4] [--seed 0] [--steps 12] [--methods none,sleep,...] [--keep DIR]

For each method a tiny run is trained once uninterrupted (the reference). Then, per kill, the same run is
started in a child process that sends itself SIGKILL at a point drawn at random among every write the run
makes: before any metrics line (the first lines come before the first checkpoint), before or after any
checkpoint is saved (the last loop checkpoint, before the final evaluation, included), and before
summary.json. The kill is real (`os.kill(getpid(), SIGKILL)`: no handler, no cleanup); drawing it at a write
rather than at a wall time makes every window reachable, however short. The killed run is resumed with
`tinylm train --out DIR --resume` (a second kill is drawn with --twice) and compared with the reference:
final weights (bitwise), metrics.jsonl line for line (timing fields aside), summary.json (timing aside).

Prints one JSON object: per method the kills, their points, and how many resumed runs equal the reference.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TIMING = {"tokens_per_s", "data_s", "compute_s", "memory_mb", "flops_per_s", "mfu", "wall_s", "session_wall_s",
          "out_dir"}
METHODS = {
    "none": None,
    "sleep": {"sleep": {"episode": "4 steps", "policy": "light"}},
    "forget": {"forget": {"every": 4}},
    "freeze": {"freeze": {"train": ["embeddings"]}},
    "grow": {"grow": {"incremental": "8 steps"}},
    "distill": {"distill": {"teachers": ["TEACHER"]}},
}


# -- the child: a tinylm train that kills itself at the drawn write --------------------------------
def child(kill: str | None, argv: list[str]) -> int:
    """`kill` is KIND:N: metrics:N (before the N-th metrics line), save:N / saved:N (before / after the
    N-th checkpoint is written), summary:1 (before summary.json); None: no kill (it reports its counts)."""
    import tinylm.runs.execute as execute
    import tinylm.train.checkpoint as checkpoint
    import tinylm.train.loop as loop
    from tinylm.cli.main import main
    from tinylm.train.metrics import MetricsLog

    counts = {"metrics": 0, "save": 0, "saved": 0, "summary": 0}
    kind, _, n = (kill or "none:0").partition(":")

    def tick(name: str) -> None:
        counts[name] += 1
        if name == kind and counts[name] == int(n):
            os.kill(os.getpid(), signal.SIGKILL)

    write = MetricsLog.write

    def metrics_write(self, record):
        if self.path is not None:
            tick("metrics")
        return write(self, record)
    MetricsLog.write = metrics_write
    save = checkpoint.save_checkpoint

    def save_checkpoint(run):
        tick("save")
        out = save(run)
        tick("saved")
        return out
    loop.save_checkpoint = save_checkpoint
    write_json = execute.write_json

    def summary(path, obj, *a, **k):
        tick("summary")
        return write_json(path, obj, *a, **k)
    execute.write_json = summary
    code = main(argv)
    if kill is None:
        print("COUNTS " + json.dumps(counts))
    return code


# -- the parent ------------------------------------------------------------------------------------
def run_child(kill, argv, env) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, __file__, "--child", kill or "", "--", *argv], capture_output=True,
                          text=True, env=env)


def outcome(out: Path):
    from safetensors.torch import load_file

    from tinylm.rundir.checkpoints import latest_checkpoint
    from tinylm.rundir.metrics import read_metrics

    metrics = [{k: v for k, v in r.items() if k not in TIMING} for r in read_metrics(out / "metrics.jsonl")]
    summary = {k: v for k, v in json.loads((out / "summary.json").read_text()).items() if k not in TIMING}
    return metrics, summary, load_file(str(latest_checkpoint(out) / "model.safetensors"))


def compare(reference: Path, out: Path) -> dict:
    import torch

    try:
        m0, s0, w0 = outcome(reference)
        m1, s1, w1 = outcome(out)
    except Exception as e:  # noqa: BLE001 - a harness reports, it does not stop
        return {"weights": False, "metrics": False, "summary": False, "error": f"{type(e).__name__}: {e}"}
    return {"weights": w0.keys() == w1.keys() and all(torch.equal(w0[k], w1[k]) for k in w0),
            "metrics": m0 == m1, "summary": s0 == s1}


def make_store(root: Path) -> Path:
    import gzip

    from tinylm.data import prepare_store
    from tinylm.package_files import package_file

    text = gzip.decompress(package_file("assets", "corpus", "AliceInWonderland.txt.gz").read_bytes()).decode()
    src = root / "alice.txt"
    src.write_text(text[:120_000])
    prepare_store([str(src)], "gpt2", root / "store", val_fraction=0.1, seed=0, docs="paragraph")
    return root / "store"


def write_recipe(root: Path, name: str, store: Path, steps: int, methods) -> Path:
    import yaml

    recipe = {"name": name, "data": {"store": str(store), "seq_len": 16, "sampler": "windows"},
              "model": {"name": "L2-2-16x2", "flavour": "llama"},
              "train": {"duration": f"{steps} steps", "batch_size": 2, "lr": 3e-3, "log_every": 2, "precision": "fp32"},
              "eval": {"every": 6, "windows": 2, "batch_size": 2}, "checkpoint": {"every": 4, "keep": 2}}
    if methods:
        recipe["methods"] = [methods]
    path = root / f"{name}.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kills", type=int, default=4, help="kills per method")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--keep", help="keep the runs in this directory (default: a temporary one, deleted)")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    root = Path(args.keep or tempfile.mkdtemp(prefix="kill-resume-"))
    root.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    started = time.time()
    store = make_store(root)
    results, total, equal = {}, 0, 0
    try:
        teacher = None
        for method in args.methods.split(","):
            options = json.loads(json.dumps(METHODS[method]))
            if method == "distill":
                if teacher is None:
                    teacher = root / "teacher"
                    run_child(None, ["train", str(write_recipe(root, "teacher", store, args.steps, None)), "--out",
                                     str(teacher), "--quiet"], env)
                options["distill"]["teachers"] = [str(teacher)]
            recipe = write_recipe(root, method, store, args.steps, options)
            reference = root / f"{method}-reference"
            done = run_child(None, ["train", str(recipe), "--out", str(reference), "--quiet"], env)
            if done.returncode != 0:
                results[method] = {"error": done.stderr.strip().splitlines()[-1:]}
                continue
            counts = json.loads(done.stdout.split("COUNTS ", 1)[1].splitlines()[0])
            points = [f"{kind}:{n}" for kind in ("metrics", "save", "saved", "summary")
                      for n in range(1, counts[kind] + 1)]
            # the windows the issue names, always drawn: before the first checkpoint, after the last loop one
            loop_saves = counts["save"] - 1  # the final save after the `end` event is the last
            must = ["metrics:1", f"saved:{loop_saves}"]
            drawn = must + rng.sample([p for p in points if p not in must], max(0, min(args.kills - 2, len(points) - 2)))
            cases = []
            for i, point in enumerate(drawn[:args.kills]):
                out = root / f"{method}-kill{i}"
                killed = run_child(point, ["train", str(recipe), "--out", str(out), "--quiet"], env)
                resumed = run_child(None, ["train", str(recipe), "--out", str(out), "--resume", "--quiet"], env)
                same = compare(reference, out)
                ok = killed.returncode == -signal.SIGKILL and resumed.returncode == 0 and all(
                    same.get(k) for k in ("weights", "metrics", "summary"))
                case = {"kill": point, "killed_rc": killed.returncode, "resume_rc": resumed.returncode, **same, "equal": ok}
                if resumed.returncode != 0:
                    case["resume_error"] = (resumed.stderr.strip().splitlines() or [""])[-1][:300]
                cases.append(case)
                total, equal = total + 1, equal + ok
                shutil.rmtree(out, ignore_errors=True)
            results[method] = {"points": len(points), "kills": len(cases), "equal": sum(c["equal"] for c in cases),
                               "cases": cases}
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    print(json.dumps({"kills": total, "equal": equal, "seconds": round(time.time() - started, 1),
                      "steps": args.steps, "seed": args.seed, "methods": results}, indent=1))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        kill = sys.argv[2] or None
        sys.exit(child(kill, sys.argv[sys.argv.index("--") + 1:]))
    main()
