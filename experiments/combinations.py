"""The combinations none of the papers tried, at tiny scale with seeds (tinylm issue 21).

Part 1, sleep + distill. FORGETTER (Yamamoto & Miura, BabyLM 2025) leaves "the combination of
FORGETTER with distillation" to future work. distill_tiny.py's setting (the bundled books, 4k BPE,
a 4-layer Llama of width 128, 16 x 128 tokens a step; one English store serves both parts):
  teacher         2 runs, seeds 0 and 1, plain CE, T steps (BabyLlama-2's same-size teachers)
  ensemble        the two teachers' mean logits, scored as one model
  student         distilled from both teachers (alpha 0.5, temperature 1), same architecture, T steps
  student+sleep   the same recipe plus `sleep`: episodes of T/3 steps, the paper's policy (light sleeps while
                  the validation loss improves; then roll back to the best episode and deep-sleep; stop when a
                  deep sleep does not improve), threshold 0, patience 1. The recipe's cosine schedule restarts in
                  every episode; the paper's forgetful hyperparameters (weight decay 1.0, linear decay) are not
                  taken, so that the method is the arms' only difference. Students of seed s share init and data
                  order across the two arms (seed 100 + s).
  Everything is scored on one seeded set of validation windows (eval seed REPORT_SEED), not on the runs' own
  windows, which the sleep policy chooses its weights by.

Part 2, grow + forget. GAFF's active forgetting has not been tried with incremental growth. gaff_tiny.py's
protocol: pretrain a Pythia-style model (neox flavour, 4 layers) on English for P steps, adapt it to German
(Grimms' tales, a new 4k BPE): fresh embeddings, body frozen, A steps; measured: steps to reach the target
loss (1.02 x the `plain` arm's mean final adaptation loss, as gaff_tiny), area under the adaptation loss
curve, final German validation loss. Pretraining arms, all P steps (same steps, not same FLOPs: each run's
FLOPs are reported):
  plain           one cosine cycle
  forget          `forget` every k steps, cyclic schedule, last reset at P - k (gaff_tiny's active forgetting)
  grow            `grow`, 2 stages (2 + 2 layers) over P/2 steps, then P/2 of continual training with a fresh
                  AdamW (grow_tiny.py's curriculum)
  grow+forget     both methods in one recipe
Unlike gaff_tiny, every adaptation warms up for A/10 steps (gaff_tiny's adaptations inherit the pretraining
warmup: P/10 for the standard arm, k/10 for the forgetting one, which confounds its steps to target).

Sizes and time. CPU seconds per step at 16 x 128 tokens, one thread, measured 2026-12-03 (nice'd on the
2 busy cores, a few steps of each kind after a warm-up): teacher 0.25, student with 2 teachers 0.44,
English pretraining 0.15-0.23, German adaptation 0.16; about 1 s a run to start. Times x 1.5 (two
processes on two cores, evaluations, start-ups) account for the wall times recorded in results/:
gaff_tiny's 774 s, and distill_tiny's 1989 s less its BLiMP evaluations.
Defaults T = 240, P = 240, k = 30, A = 150, 3 seeds, --jobs 2: part 1 (2 teachers, 6 students)
(0.25 + 3 x 0.44) x T x 1.5 = about 570 s; part 2 (12 pretrainings and adaptations)
12/2 x (0.19 P + 0.16 A) x 1.5 = about 630 s; in all about 20 minutes on 2 free cores.

    python experiments/combinations.py [--out experiments/out/combinations] [--seeds 3] [--jobs 2]
    python experiments/combinations.py --quick --out /tmp/combos    # tiny sizes, well under a minute
Writes experiments/results/combinations.json (--result) and combinations-sleep-distill.png,
combinations-grow-forget.png beside it (with --quick: into --out); prints a short JSON summary.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path

from common import mean_std, parallel_map, run_recipe

from tinylm.rundir.curves import curve, steps_to_reach
from tinylm.rundir.metrics import read_metrics

HERE = Path(__file__).resolve().parent
GERMAN = HERE.parents[1] / "shared" / "data" / "corpora" / "german" / "grimm-1.txt"
REPORT_SEED = 4321  # the reported validation windows' seed; the runs decide (sleep) on the default 1234
SIZES = {"steps": 240, "pretrain": 240, "k": 30, "adapt": 150, "seeds": 3, "windows": 128, "batch": 16,
         "seq_len": 128, "log_every": 10}
QUICK = {"steps": 12, "pretrain": 12, "k": 4, "adapt": 8, "seeds": 2, "windows": 8, "batch": 4, "seq_len": 32,
         "log_every": 2}
STUDENTS = {"student": False, "student+sleep": True}  # part 1's arms: sleeps or not


def base_recipe(name: str, store: Path, sampler: str, seed: int, steps: int, model: dict, train: dict,
                methods: list, args) -> dict:
    """Every run here: `seed` for init and data order, a cosine schedule, one evaluation and checkpoint at the end."""
    return {
        "name": name,
        "data": {"store": str(store), "sampler": sampler, "seq_len": args.seq_len, "seed": seed},
        "model": model,
        "train": {"duration": f"{steps} steps", "batch_size": args.batch, "schedule": "cosine", "min_lr_ratio": 0.1,
                  "seed": seed, "log_every": args.log_every, **train},
        "eval": {"every": 0, "windows": args.windows, "batch_size": 32},
        "checkpoint": {"every": 0},
        "methods": methods,
    }


# -- part 1: sleep + distill -------------------------------------------------------------------------
def distill_recipe(store: Path, seed: int, args, teachers: list[str] | None = None, sleep: bool = False) -> dict:
    """distill_tiny.py's recipe; a student distils from `teachers`, and sleeps in episodes of T/3 steps."""
    steps = args.steps
    methods = [{"sleep": {"episode": f"{max(1, steps // 3)} steps", "policy": "paper", "threshold": 0.0,
                          "patience": 1}}] if sleep else []
    if teachers:
        methods.append({"distill": {"teachers": teachers, "alpha": 0.5, "temperature": 1.0}})
    name = "combinations-" + ("teacher" if not teachers else "student+sleep" if sleep else "student")
    return base_recipe(name, store, "chunks", seed, steps, {"name": "L4-4-128x4", "flavour": "llama"},
                       {"lr": 2e-3, "weight_decay": 0.1, "warmup": steps // 20},
                       methods, args)


def report_val_loss(models: list[Path], windows: int) -> float:
    """Validation loss of one run or the mean-logit ensemble of several, on the REPORT_SEED windows of the
    first run's store (every part-1 run has the same data section, so the windows are the same for all)."""
    from tinylm.eval.ensemble import ensemble_of, load_members
    from tinylm.eval.validation import validation_loss
    from tinylm.train.build import recipe_for_run

    members = load_members([str(m) for m in models])
    model = ensemble_of(members) if len(members) > 1 else members[0].model.eval()
    recipe = recipe_for_run(models[0], [f"eval.seed={REPORT_SEED}", f"eval.windows={windows}"])
    return validation_loss(model, recipe.data.store, tokenizer=members[0].tokenizer,
                           tokenizer_path=members[0].tokenizer_path, recipe=recipe)["val_loss"]


def sleep_distill_runs(store: Path, out: Path, args) -> tuple[list, list]:
    """(recipe, run dir) of the teachers, and of the students, which need the teachers finished."""
    teachers = [(distill_recipe(store, s, args), out / "teacher" / f"seed{s}") for s in (0, 1)]
    names = [str(d) for _, d in teachers]
    students = [(distill_recipe(store, 100 + s, args, names, sleep), out / arm / f"seed{s}")
                for s in range(args.seeds) for arm, sleep in STUDENTS.items()]
    return teachers, students


def sleep_distill(out: Path, args) -> dict:
    """Part 1's report, read from its finished runs."""
    teachers = [out / "teacher" / f"seed{s}" for s in (0, 1)]
    names, arms = [str(t) for t in teachers], STUDENTS
    rows = {"teacher": [_run_row(t, s, args.windows) for s, t in zip((0, 1), teachers)]}
    for arm in arms:
        rows[arm] = [_run_row(out / arm / f"seed{s}", 100 + s, args.windows) for s in range(args.seeds)]
    groups = {g: {"runs": r, "val_loss": mean_std([x["val_loss"] for x in r])} for g, r in rows.items()}
    groups["ensemble"] = {"members": names, "val_loss": report_val_loss(teachers, args.windows)}
    best_teacher = min(x["val_loss"] for x in rows["teacher"])
    return {"steps": args.steps, "sleep_episode_steps": max(1, args.steps // 3), "report_windows_seed": REPORT_SEED,
            "groups": groups,
            "below_best_teacher": {a: sum(x["val_loss"] < best_teacher for x in rows[a]) for a in arms},
            "sleep_minus_plain_per_seed": [b["val_loss"] - a["val_loss"]
                                           for a, b in zip(rows["student"], rows["student+sleep"])]}


def _run_row(run: Path, seed: int, windows: int) -> dict:
    summary = json.loads((run / "summary.json").read_text())
    records = read_metrics(run / "metrics.jsonl")
    teacher_flops = [r["distill_teacher_flops"] for r in records if "distill_teacher_flops" in r]
    return {"seed": seed, "run": str(run), "val_loss": report_val_loss([run], windows),
            "val_loss_own_windows": summary.get("val_loss"), "steps": summary["steps"], "flops": summary["flops"],
            "teacher_flops": teacher_flops[-1] if teacher_flops else 0.0, "events": _events(records),
            "episodes": [{"episode": r["episode"], "step": r["step"], "val_loss": r["val_loss"], "sleep": r["sleep"]}
                         for r in records if r.get("event") == "episode_end"]}


def _events(records: list[dict]) -> dict:
    return dict(Counter(r["event"] for r in records if "event" in r))


# -- part 2: grow + forget ----------------------------------------------------------------------------
def gaff_arms(args) -> dict:
    forget = {"forget": {"every": args.k, "cyclic": True, "end": args.pretrain - args.k}}
    grow = {"grow": {"stages": 2, "incremental": f"{args.pretrain // 2} steps", "continual_optimizer": "reset"}}
    return {"plain": [], "forget": [forget], "grow": [grow], "grow+forget": [grow, forget]}


def gaff_recipe(store: Path, seed: int, args, methods: list) -> dict:
    """gaff_tiny.py's pretraining recipe; a cyclic `forget` warms up for k/10 of every cycle."""
    cycle = args.k if any("forget" in m for m in methods) else args.pretrain
    return base_recipe("combinations-pretrain", store, "windows", seed, args.pretrain,
                       {"name": "L4-4-128x4", "flavour": "neox"},
                       {"lr": 1e-3, "weight_decay": 0.01, "warmup": max(1, cycle // 10)}, methods, args)


def pretrain_and_adapt(english: Path, german: Path, out: Path, arm: str, methods: list, seed: int, args) -> dict:
    """One (arm, seed): pretrain on English (or reuse the finished run), adapt its embeddings to German."""
    from tinylm.runs.adaptation import adapt

    pre = out / arm / f"seed{seed}" / "pretrain"
    summary = run_recipe(gaff_recipe(english, seed, args, methods), pre)
    ada = out / arm / f"seed{seed}" / "adapt"
    report = adapt(pre, ada, store=str(german), duration=f"{args.adapt} steps", seed=seed,
                   overrides=[f"train.log_every={args.log_every}", "eval.every=0", "checkpoint.every=0",
                              f"train.warmup={max(1, args.adapt // 10)}"],
                   resume=(ada / "run" / "checkpoints").exists())
    return {"seed": seed, "run": str(pre), "pretrain_steps": summary["steps"], "pretrain_flops": summary["flops"],
            "pretrain_val_loss_en": summary["val_loss"], "events": _events(read_metrics(pre / "metrics.jsonl")),
            "adapt_val_loss_de": report["val_loss"], "adapt_loss_auc": report["loss_auc"],
            "adapt_final_loss": report["final_loss"], "points": curve(ada / "run", "loss")}


def grow_forget_units(english: Path, german: Path, out: Path, args) -> list[tuple]:
    """pretrain_and_adapt's arguments, one tuple per (arm, seed)."""
    return [(english, german, out, arm, methods, seed, args) for seed in range(args.seeds)
            for arm, methods in gaff_arms(args).items()]


def grow_forget(units: list[tuple], done: list[dict], args) -> dict:
    """Part 2's report from pretrain_and_adapt's rows (`done`, in the order of `units`)."""
    arms = gaff_arms(args)
    rows = {arm: [] for arm in arms}
    for unit, row in zip(units, done):
        rows[unit[3]].append(row)
    target = 1.02 * mean_std([r["adapt_final_loss"] for r in rows["plain"]])["mean"]
    results = {}
    for arm, runs in rows.items():
        for r in runs:
            r["steps_to_target"] = steps_to_reach(r["points"], target)
        results[arm] = {"runs": runs, "methods": arms[arm],
                        **{key: mean_std([r[key] for r in runs]) for key in
                           ("pretrain_flops", "pretrain_val_loss_en", "adapt_val_loss_de", "adapt_loss_auc",
                            "adapt_final_loss")},
                        "steps_to_target": mean_std([args.adapt if r["steps_to_target"] is None
                                                     else r["steps_to_target"] for r in runs])}
    return {"pretrain_steps": args.pretrain, "k": args.k, "adapt_steps": args.adapt, "target_loss": target,
            "arms": results, "note": "all arms pretrain the same number of steps (not the same FLOPs: see "
                                     "pretrain_flops); steps_to_target counts a run that never reaches the "
                                     "target as the full adaptation length"}


def _job(kind: str, job: tuple):
    """One unit of a worker process: train a recipe ("train") or pretrain and adapt ("adapt", part 2)."""
    return run_recipe(*job) if kind == "train" else pretrain_and_adapt(*job)


# -- checks, summary, plots ---------------------------------------------------------------------------
def checks(part1: dict, part2: dict) -> dict:
    """Did each combination do both things? Read from the primitives' events in every run's metrics."""
    sleepers = part1["groups"]["student+sleep"]["runs"]
    students = part1["groups"]["student"]["runs"] + sleepers
    both = part2["arms"]["grow+forget"]["runs"]
    return {"student+sleep runs ended episodes": all(r["events"].get("episode_end", 0) >= 1 for r in sleepers),
            "student+sleep runs slept (optimizer reset or rebuilt)":
                all(r["events"].get("reset_optimizer", 0) + r["events"].get("rebuild_model", 0) >= 1 for r in sleepers),
            "students distilled (teacher FLOPs counted)": all(r["teacher_flops"] > 0 for r in students),
            "grow+forget runs grew": all(r["events"].get("grow", 0) >= 1 for r in both),
            "grow+forget runs forgot (embeddings re-drawn)": all(r["events"].get("reinit", 0) >= 1 for r in both)}


def summary(report: dict) -> dict:
    def short(stats: dict) -> str:
        return f"{stats['mean']:.4g} ± {stats['std']:.2g} (n={stats['n']})"
    p1, p2 = report["sleep_distill"], report["grow_forget"]
    return {"sleep_distill": {**{g: short(r["val_loss"]) for g, r in p1["groups"].items() if g != "ensemble"},
                              "ensemble": round(p1["groups"]["ensemble"]["val_loss"], 4)},
            "grow_forget": {arm: {k: short(r[k]) for k in ("steps_to_target", "adapt_loss_auc", "adapt_val_loss_de")}
                            | {"pretrain_gflops": round(r["pretrain_flops"]["mean"] / 1e9, 1)}
                            for arm, r in p2["arms"].items()},
            "checks": report["checks"], "wall_seconds": report["wall_seconds"], "result": report["result"]}


def _plot_sleep_distill(part: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4.5))
    names = ["teacher", "student", "student+sleep"]
    data = [part["groups"][g]["val_loss"]["values"] for g in names]
    ax.boxplot(data, showmeans=True)
    for i, values in enumerate(data, start=1):
        ax.scatter([i] * len(values), values, s=16, color="k", zorder=3)
    ax.axhline(part["groups"]["ensemble"]["val_loss"], color="tab:green", ls="--", lw=1,
               label="ensemble of the 2 teachers")
    ax.set_xticks(range(1, len(names) + 1), names)
    ax.set_ylabel(f"validation loss (windows of seed {REPORT_SEED})")
    ax.set_title(f"Distilled from 2 teachers, with and without sleeps ({part['steps']} steps, a point per seed)",
                 fontsize=10)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _plot_grow_forget(part: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.5))
    colors = dict(zip(part["arms"], ("tab:gray", "tab:red", "tab:blue", "tab:purple")))
    for arm, r in part["arms"].items():
        for i, run in enumerate(r["runs"]):
            axes[0].plot([s for s, _ in run["points"]], [v for _, v in run["points"]], color=colors[arm], alpha=0.6,
                         label=arm if i == 0 else None)
        axes[1].scatter([x["pretrain_flops"] for x in r["runs"]], [x["adapt_val_loss_de"] for x in r["runs"]],
                        color=colors[arm], label=arm)
    axes[0].axhline(part["target_loss"], color="k", ls=":", lw=1, label=f"target {part['target_loss']:.2f}")
    axes[0].set_xlabel("adaptation step (embeddings only, body frozen)")
    axes[0].set_ylabel("training loss on German")
    axes[1].set_xlabel(f"pretraining FLOPs ({part['pretrain_steps']} steps for every arm)")
    axes[1].set_ylabel("German validation loss after adaptation")
    for ax in axes:
        ax.legend()
    fig.suptitle("Growth and active forgetting, alone and together: adapting to German (one line/point per seed)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# -- main ---------------------------------------------------------------------------------------------
def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="experiments/out/combinations", help="runs and stores")
    p.add_argument("--result", help="the JSON report (default experiments/results/combinations.json; "
                                    "with --quick: OUT/combinations.json); the PNGs go beside it")
    p.add_argument("--quick", action="store_true", help=f"tiny sizes for a test: {QUICK}")
    p.add_argument("--jobs", type=int, default=2, help="runs in parallel, one thread each")
    p.add_argument("--german", default=str(GERMAN), help="German text for the adaptation")
    p.add_argument("--seeds", type=int, help=f"students per arm (part 1), runs per arm (part 2); {SIZES['seeds']}")
    p.add_argument("--steps", type=int, help=f"T, the teachers' and students' steps; {SIZES['steps']}")
    p.add_argument("--pretrain", type=int, help=f"P, English pretraining steps of every arm; {SIZES['pretrain']}")
    p.add_argument("--k", type=int, help=f"steps between embedding resets; {SIZES['k']}")
    p.add_argument("--adapt", type=int, help=f"A, German adaptation steps; {SIZES['adapt']}")
    p.add_argument("--windows", type=int, help=f"validation windows; {SIZES['windows']}")
    p.add_argument("--batch", type=int, help=f"sequences per step; {SIZES['batch']}")
    p.add_argument("--seq-len", type=int, help=f"tokens per sequence; {SIZES['seq_len']}")
    p.add_argument("--log-every", type=int, help=f"steps between training-loss lines; {SIZES['log_every']}")
    args = p.parse_args(argv)
    for key, value in (QUICK if args.quick else SIZES).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    out = Path(args.out)
    args.result = Path(args.result) if args.result else (out if args.quick else HERE / "results") / "combinations.json"
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    started = time.perf_counter()
    out = Path(args.out)
    if not Path(args.german).is_file():
        sys.exit(f"German text {args.german} not found: pass --german FILE "
                 "(e.g. tests/fixtures/german/grimm-2-head.txt)")
    from tinylm.data import TokenStore, default_corpus_files, prepare_store
    english, german = out / "store-en", out / "store-de"
    if not (english / "meta.json").exists():
        prepare_store([str(f) for f in default_corpus_files()], "bpe:4096", english, val_fraction=0.05, seed=0,
                      docs="paragraph")
    if not (german / "meta.json").exists():
        prepare_store([args.german], "bpe:4096", german, val_fraction=0.05, seed=0, docs="line")
    TokenStore.open(german)
    teachers, students = sleep_distill_runs(english, out / "sleep-distill", args)
    units = grow_forget_units(english, german, out / "grow-forget", args)
    # Two rounds of --jobs processes (each round starts its own): the teachers with part 2, then the students.
    done = parallel_map(_job, [("train", t) for t in teachers] + [("adapt", u) for u in units], args.jobs)
    parallel_map(_job, [("train", s) for s in students], args.jobs)
    part1 = sleep_distill(out / "sleep-distill", args)
    part2 = grow_forget(units, done[len(teachers):], args)
    report = {"experiment": "combinations", "quick": args.quick,
              "settings": {k: getattr(args, k) for k in (*SIZES, "jobs")} | {"german": str(args.german)},
              "tokens_per_step": args.batch * args.seq_len, "sleep_distill": part1, "grow_forget": part2,
              "checks": checks(part1, part2), "result": str(args.result)}
    report["wall_seconds"] = round(time.perf_counter() - started, 1)  # this invocation, runs reused included
    args.result.parent.mkdir(parents=True, exist_ok=True)
    args.result.write_text(json.dumps(report, indent=1))
    stem = args.result.with_suffix("")
    _plot_sleep_distill(part1, stem.with_name(stem.name + "-sleep-distill.png"))
    _plot_grow_forget(part2, stem.with_name(stem.name + "-grow-forget.png"))
    print(json.dumps(summary(report), indent=1, ensure_ascii=False))
    failed = [name for name, ok in report["checks"].items() if not ok]
    if failed:
        print("combination checks failed: " + "; ".join(failed), file=sys.stderr)


if __name__ == "__main__":
    main()
