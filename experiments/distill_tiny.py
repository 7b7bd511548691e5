"""BabyLlama-2 at tiny scale: is a student distilled from an ensemble of same-size teachers better
than its teachers?  (Tastet & Timiryasov, BabyLM 2024; their Table 2 and Fig. 1.)

On the bundled children's books (2.4k-token BPE... see --vocab), one small Llama architecture:
  teachers      3 runs with seeds 0, 1, 2 (init and data order), plain CE
  student-2T    distilled from teachers 0 and 1 (alpha 0.5, T 1), same architecture and steps, 3 seeds
  student-3T    distilled from all three teachers, 3 seeds
  ensemble-2T/3T  the teachers' direct ensemble (mean logits), evaluated as one model
Every model is scored the same way: validation loss on the same seeded windows and BLiMP
(--limit pairs per paradigm), through `tinylm eval`.

    python experiments/distill_tiny.py [--out experiments/out/distill] [--steps 600] [--jobs 2]
Prints JSON; writes results.json and distill.png into --out.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from common import mean_std, parallel_map, run_recipe

BLIMP = Path(__file__).resolve().parents[2] / "shared" / "data" / "blimp"


def recipe(store: Path, seed: int, steps: int, teachers: list[str] | None) -> dict:
    methods = [{"distill": {"teachers": teachers, "alpha": 0.5, "temperature": 1.0}}] if teachers else []
    return {
        "name": "distill-tiny-" + (f"student-{len(teachers)}T" if teachers else "teacher"),
        "data": {"store": str(store), "sampler": "chunks", "seq_len": 128, "seed": seed},
        "model": {"name": "L4-4-128x4", "flavour": "llama"},
        "train": {"duration": f"{steps} steps", "batch_size": 16, "lr": 2e-3, "weight_decay": 0.1,
                  "schedule": "cosine", "warmup": steps // 20, "min_lr_ratio": 0.1, "seed": seed, "log_every": 25},
        "eval": {"every": 0, "windows": 128, "batch_size": 32},
        "checkpoint": {"every": 0},
        "methods": methods,
    }


def evaluate(models: list[Path], store: Path, limit: int) -> dict:
    """`tinylm eval` (one model or a direct ensemble): validation loss and BLiMP headline numbers."""
    who = ["--ensemble", *map(str, models)] if len(models) > 1 else [str(models[0])]
    cmd = [sys.executable, "-m", "tinylm.cli.main", "eval", *who, "--val", str(store), "--blimp", str(BLIMP),
           "--limit", str(limit), "--json", "--quiet"]
    done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    if done.returncode:
        raise RuntimeError(f"{' '.join(cmd)}\n{done.stderr}")
    head = json.loads(done.stdout)["headline"]
    return {"val_loss": head["val_loss"], "blimp": head["blimp_mean"]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--out", default="experiments/out/distill")
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--seeds", type=int, default=3, help="teachers, and students per teacher set")
    p.add_argument("--vocab", type=int, default=4096)
    p.add_argument("--limit", type=int, default=100, help="BLiMP pairs per paradigm")
    p.add_argument("--jobs", type=int, default=2, help="runs in parallel, one thread each")
    args = p.parse_args()
    started = time.perf_counter()
    out = Path(args.out)
    from tinylm.data import default_corpus_files, prepare_store
    store = out / "store"
    if not (store / "meta.json").exists():
        prepare_store([str(f) for f in default_corpus_files()], f"bpe:{args.vocab}", store, val_fraction=0.05,
                      seed=0, docs="paragraph")
    teachers = [out / "teacher" / f"seed{s}" for s in range(args.seeds)]
    parallel_map(run_recipe, [(recipe(store, s, args.steps, None), d) for s, d in enumerate(teachers)], args.jobs)
    groups = {"student-2T": [str(t) for t in teachers[:2]], "student-3T": [str(t) for t in teachers[:3]]}
    students = {g: [out / g / f"seed{s}" for s in range(args.seeds)] for g in groups}
    parallel_map(run_recipe, [(recipe(store, 100 * (i + 1) + s, args.steps, groups[g]), d)
                              for i, g in enumerate(groups) for s, d in enumerate(students[g])], args.jobs)
    trained = {"teacher": teachers, **students}
    jobs = [(g, [d]) for g, ds in trained.items() for d in ds] + [
        ("ensemble-2T", teachers[:2]), ("ensemble-3T", teachers[:3])]
    with ThreadPoolExecutor(args.jobs) as pool:
        scores = list(pool.map(lambda job: evaluate(job[1], store, args.limit), jobs))
    rows: dict[str, list] = {}
    for (group, models), score in zip(jobs, scores):
        rows.setdefault(group, []).append({"models": [str(m) for m in models], **score})
    results = {g: {"runs": r, "val_loss": mean_std([x["val_loss"] for x in r]),
                   "blimp": mean_std([x["blimp"] for x in r])} for g, r in rows.items()}
    best_teacher = min(r["val_loss"] for r in rows["teacher"])
    report = {"experiment": "distill-tiny", "steps": args.steps, "tokens_per_step": 16 * 128,
              "seeds": args.seeds, "blimp_limit_per_paradigm": args.limit, "groups": results,
              "students_below_best_teacher": {g: sum(x["val_loss"] < best_teacher for x in rows[g])
                                              for g in ("student-2T", "student-3T")}}
    report["wall_seconds"] = round(time.perf_counter() - started, 1)  # this invocation, runs reused included
    (out / "results.json").write_text(json.dumps(report, indent=1))
    _plot(rows, out / "distill.png")
    print(json.dumps({g: {k: {"mean": round(v["mean"], 4), "std": round(v["std"], 4), "n": v["n"]}
                          for k, v in r.items() if k != "runs"} for g, r in results.items()}, indent=1))


def _plot(rows: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2))
    names = list(rows)
    for ax, key, label in zip(axes, ("val_loss", "blimp"), ("validation loss", "BLiMP (mean over paradigms)")):
        data = [[x[key] for x in rows[g]] for g in names]
        ax.boxplot(data, showmeans=True)
        for i, values in enumerate(data, start=1):
            ax.scatter([i] * len(values), values, s=14, color="k", zorder=3)
        ax.set_xticks(range(1, len(names) + 1), names, rotation=20)
        ax.set_ylabel(label)
    fig.suptitle("Ensemble distillation at tiny scale (one point per seed)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
