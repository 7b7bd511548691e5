"""Tiny language models (Gross et al. 2025) at CPU scale: the pretraining gap against W_S, and a soft
committee of shallow BERT-1 variants against one deeper BERT.

Corpus: the 16,316 Wikipedia sentences in ../shared/data/corpora/wikipedia-sentences (one sentence =
one paragraph here; the paper's paragraphs are longer), bert-base-uncased tokenizer as the paper.
Models are narrow stand-ins (64 wide, 2 heads; 64 tokens) for the paper's 768-wide BERTs.

(a) Pretraining gap on AG News (1,000 train / 900 test per label, the shipped file's 1,900 per label):
    a 4-block encoder pretrained with MLM (the same number of steps for every W_S: equal compute, so
    only the amount of text differs) on W_S random paragraphs (nested, seed 0), fine-tuned over
    --seeds seeds; the gap is (pretrained - from scratch), with W_S, T_W, T_M and the weighted overlaps.
(b) FewRel, 16 relations x 300/70 (the paper: 630/70): three BERT-1 variants (a 2-CL 3x3 stem, a wider convolution-free
    one as the paper's 24-head member, a 2-CL 16x3 stem) and the 4-block model, all pretrained on the
    largest W_S; each fine-tuned per seed (--committee-seeds, default 3); the soft committee (sum of raw logits) of the three
    against the deep model: accuracy, the paper's layer count and measured ms per batch (members run
    in sequence on this CPU).

    python experiments/encoders_tiny.py [--out experiments/out/encoders] [--seeds 5] [--jobs 2]
Prints JSON and writes results.json into --out. Tiny budgets: ~15 minutes on 2 quiet cores.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from common import mean_std, parallel_map, run_recipe, wikipedia_store

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
DEEP = "L4-2-64x4"  # the BERT-6 stand-in
MEMBERS = {"bert1-conv2x8k3x3": "L1-2-64x4+conv2x8k3x3", "bert1-wide": "L1-4-128x4",
           "bert1-conv2x8k16x3": "L1-2-64x4+conv2x8k16x3"}


def pretrain_recipe(store: Path, model: str, steps: int) -> dict:
    return {"name": "encoders-tiny", "data": {"store": str(store), "sampler": "mlm", "seq_len": 64, "seed": 0},
            "model": {"name": model, "flavour": "bert", "max_seq_len": 64, "dropout": 0.1},
            "train": {"duration": f"{steps} steps", "batch_size": 32, "lr": 2e-3, "warmup": steps // 20,
                      "weight_decay": 0.01, "log_every": 50, "seed": 0},
            "eval": {"every": 0, "windows": 64, "batch_size": 32}, "checkpoint": {"every": 0}}


def finetune_job(base: str, task: str, labels, per_label: tuple, seed: int, scratch: bool, epochs: float,
                 lr: float, out: str | None) -> dict:
    """One fine-tune (a process of its own under parallel_map): accuracy on the task's test half."""
    from tinylm.data.task_spec import TaskSpec
    from tinylm.runs.finetune import finetune_one, load_base, prepare_task
    from tinylm.train.finetune import FinetuneConfig

    b = load_base(base)
    data = prepare_task(TaskSpec(task, labels, *per_label, split_seed=0), b)
    cfg = FinetuneConfig(epochs=epochs, lr=lr, weight_decay=1e-2, batch_size=32)
    return finetune_one(b, data, cfg, seed, scratch, Path(out) if out else None)


def token_stats(store: Path, task: str, labels, per_label: tuple) -> dict:
    import numpy as np

    from tinylm.data.overlap import store_token_counts, text_token_counts, token_statistics
    from tinylm.data.store import TokenStore
    from tinylm.data.tasks import balanced_split, load_task
    s = TokenStore.open(store)
    t = load_task(task, labels)
    idx = np.concatenate(balanced_split(t, *per_label, seed=0))
    counts = text_token_counts(s.tokenizer, [t.texts[i] for i in idx], s.vocab_size, s.special_ids.values())
    return token_statistics(store_token_counts(s), counts, len(s.documents("train")) - 1).to_dict()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--out", default="experiments/out/encoders")
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--jobs", type=int, default=2, help="processes in parallel, one thread each")
    p.add_argument("--sizes", type=int, nargs="+", default=[1000, 4000, 14000], help="W_S values (paragraphs)")
    p.add_argument("--pretrain-steps", type=int, default=300)
    p.add_argument("--epochs", type=float, default=3, help="fine-tuning epochs (the paper: 50)")
    p.add_argument("--lr", type=float, default=1e-3,
                   help="fine-tuning lr (the paper: 5e-5 over 50 epochs; at 3 epochs 5e-4 stays at chance, 3e-3 collapses)")
    p.add_argument("--agnews-per-label", type=int, nargs=2, default=[1000, 900], metavar=("TRAIN", "TEST"))
    p.add_argument("--fewrel-per-label", type=int, nargs=2, default=[300, 70], metavar=("TRAIN", "TEST"),
                   help="the paper: 630 70; fewer train items keep the run within ~15 minutes")
    p.add_argument("--committee-seeds", type=int, default=3, help="fine-tuning seeds for part (b)")
    p.add_argument("--skip-committee", action="store_true")
    args = p.parse_args()
    started = time.perf_counter()
    out = Path(args.out)
    from tinylm.data.overlap import random_paragraphs
    from tinylm.data.store import TokenStore
    from tinylm.data.subsets import write_documents

    store = wikipedia_store(out)
    full = TokenStore.open(store)
    sizes = sorted(args.sizes)
    subsets = {}
    for w in sizes:
        subsets[w] = out / f"ws-{w}"
        if not (subsets[w] / "meta.json").exists():
            write_documents(full, random_paragraphs(full, w, seed=0), subsets[w], {"paragraphs": w, "seed": 0})

    # Pretraining: the deep model on every W_S; the committee members on the largest.
    runs = {(DEEP, w): out / "pretrain" / f"deep-ws{w}" for w in sizes}
    if not args.skip_committee:
        runs.update({(spec, sizes[-1]): out / "pretrain" / f"{name}-ws{sizes[-1]}" for name, spec in MEMBERS.items()})
    parallel_map(run_recipe, [(pretrain_recipe(subsets[w], m, args.pretrain_steps), d) for (m, w), d in runs.items()],
                 args.jobs)

    ag = f"agnews:{SHARED / 'classification/agnews/test.csv'}"
    ag_split = tuple(args.agnews_per_label)
    jobs, keys = [], []
    for seed in range(args.seeds):
        keys.append(("scratch", seed))
        jobs.append((str(runs[(DEEP, sizes[0])]), ag, None, ag_split, seed, True, args.epochs, args.lr, None))
        for w in sizes:
            keys.append((w, seed))
            jobs.append((str(runs[(DEEP, w)]), ag, None, ag_split, seed, False, args.epochs, args.lr, None))
    fewrel = f"fewrel:{SHARED / 'classification/fewrel/val_wiki.json'}"
    fr_split = tuple(args.fewrel_per_label)
    if not args.skip_committee:
        for seed in range(args.committee_seeds):
            for name, spec in [("deep", DEEP), *MEMBERS.items()]:
                keys.append((f"fewrel:{name}", seed))
                jobs.append((str(runs[(spec, sizes[-1])]), fewrel, 16, fr_split, seed, False, args.epochs, args.lr,
                             str(out / "fewrel" / name / f"seed-{seed}")))
    results = dict(zip(keys, parallel_map(finetune_job, jobs, args.jobs)))

    scratch = [results[("scratch", s)]["accuracy"] for s in range(args.seeds)]
    gap = {"scratch": mean_std(scratch), "by_ws": []}
    for w in sizes:
        acc = [results[(w, s)]["accuracy"] for s in range(args.seeds)]
        gap["by_ws"].append({"W_S": w, **token_stats(subsets[w], ag, None, ag_split), "accuracy": mean_std(acc),
                             "gap": mean_std([a - b for a, b in zip(acc, scratch)])})
    report = {"experiment": "encoders-tiny", "seeds": args.seeds, "pretrain_steps": args.pretrain_steps,
              "finetune": {"epochs": args.epochs, "lr": args.lr}, "agnews_gap": gap}
    if not args.skip_committee:
        report["fewrel_committee"] = committee(out, args.committee_seeds, fewrel, results)
    report["wall_seconds"] = round(time.perf_counter() - started, 1)  # this invocation, runs reused included
    (out / "results.json").write_text(json.dumps(report, indent=1))
    print(json.dumps(_short(report), indent=1))


def committee(out: Path, seeds: int, task: str, results: dict) -> dict:
    """Per seed: each member's accuracy, the committee's (sum of logits) and the deep model's; latency."""
    from tinylm.eval.committee import committee_layers, ms_per_batch, paper_layers, soft_committee
    from tinylm.data.task_spec import TaskSpec
    from tinylm.runs.finetune import Base, load_finetuned, prepare_task
    from tinylm.train.finetune import accuracy, predict_logits

    per_seed, latency = [], {}
    for seed in range(seeds):
        models = {name: load_finetuned(out / "fewrel" / name / f"seed-{seed}")[0] for name in ["deep", *MEMBERS]}
        first = models["deep"]
        split = load_finetuned(out / "fewrel" / "deep" / f"seed-{seed}")[1]["task"]["spec"]
        data = prepare_task(TaskSpec(task, 16, split["train_per_label"], split["test_per_label"], 0),
                            Base(None, first.model.config, first.tokenizer_path, first.special_ids, "deep"))
        logits = {n: predict_logits(m.model, *data.test[:2]) for n, m in models.items()}
        row = {n: accuracy(lg, data.test[2]) for n, lg in logits.items()}
        row["committee"] = accuracy(soft_committee([logits[n] for n in MEMBERS]), data.test[2])
        per_seed.append(row)
        if seed == 0:
            batch = (data.test[0][:32], data.test[1][:32])
            latency = {n: {"layers": paper_layers(m.model.config), "ms_per_batch": ms_per_batch([m.model], *batch)}
                       for n, m in models.items()}
            members = [models[n].model for n in MEMBERS]
            latency["committee"] = {"layers": committee_layers([m.config for m in members]),
                                    "ms_per_batch": ms_per_batch(members, *batch), "members_run": "in sequence"}
    names = ["deep", *MEMBERS, "committee"]
    return {"accuracy": {n: mean_std([r[n] for r in per_seed]) for n in names}, "latency": latency,
            "test_items": len(data.test[2])}


def _short(report: dict) -> dict:
    r = lambda d: f"{d['mean']:.4f} ± {d['std']:.4f} (n={d['n']})"  # noqa: E731
    g = report["agnews_gap"]
    out = {"agnews scratch": r(g["scratch"]),
           "agnews by W_S": [{"W_S": x["W_S"], "T_W": x["T_W"], "T_M": x["T_M"], "covered": round(x["covered_mass"], 4),
                              "accuracy": r(x["accuracy"]), "gap": r(x["gap"])} for x in g["by_ws"]]}
    if "fewrel_committee" in report:
        c = report["fewrel_committee"]
        out["fewrel16 accuracy"] = {n: r(v) for n, v in c["accuracy"].items()}
        out["fewrel16 latency (batch 32)"] = {n: f"{v['layers']} layers, {v['ms_per_batch']:.1f} ms"
                                              for n, v in c["latency"].items()}
    out["wall_seconds"] = report["wall_seconds"]
    return out


if __name__ == "__main__":
    main()
