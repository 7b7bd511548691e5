"""The papers' claims as rows, from the experiments' result files.

Each results JSON in experiments/results becomes claim rows: `id`, `claim` (one sentence), `paper`
(the paper's own figure for it, from PAPER below), `regime` (tinylm's model, data, steps, seeds),
`tinylm` (tinylm's figure: mean ± std, n), `verdict` and `why` (from `verdict.verdict`, never typed),
`plots` (PNG names in the results directory), plus `experiment` (the JSON's "experiment") and `source`
(its file name), so that an older tiny result and a newer one for the same claim are told apart.

An extractor per experiment kind reads the JSON its script wrote. A JSON that carries a top-level
"claims" list already holds the rows (every field but `paper`); they are taken as they are.
"""

from __future__ import annotations

import json
from pathlib import Path

from tinylm.runs.stats import describe
from verdict import is_verdict, verdict

# The paper's own figure for each claim id: the number and where it is, quoting only what the paper says.
PAPER = {
    "grow.equal_compute": (
        "Li, Fung & Huang, Fig. 1 (training/validation loss; the text calls it Figure 2) and Fig. 2 (HellaSwag), "
        "GPT-2 124M, 12 layers in 4, 8, 12 stages over 10,000 steps: at the baseline's 10,000-step compute "
        "(step 14,688 for 4 stages, 15,469 for 8, 15,729 for 12; Sec. IV.A) \"all incremental models display "
        "higher training and validation losses compared to the baseline\" (Sec. IV.C.1). Curves only: no loss "
        "values in the text."),
    "grow.equal_steps": (
        "Li, Fung & Huang, Fig. 1 (loss curves): \"The baseline model exhibits faster convergence with lower "
        "overall training and validation losses throughout the training process\" (Sec. IV.C.1). Curves only."),
    "forgetter.beats_normal": (
        "Yamamoto & Miura, Table 2 (Baby10M, best structures): validated loss normal 3.0457 (48 layers) vs "
        "FORGETTER 3.0053 (22 layers); Table 3 (Baby100M): 2.4691 vs 2.4374. Longer normal runs: the normal "
        "run's 19,600 steps \"was already optimized. That means if you used longer steps (more training data) "
        "per epoch, the model would overfit\" (Sec. 3.3); no figure for a longer normal run."),
    "forgetter.longer_normal_overfits": (
        "Yamamoto & Miura, Sec. 3.3 (Baby10M): the normal run's 19,600 steps per epoch \"was already optimized. "
        "That means if you used longer steps (more training data) per epoch, the model would overfit and its "
        "validated loss deteriorates\" (Sec. 4: the same for 144,000 steps on Baby100M). No figure for the "
        "longer run."),
    "encoders.pretraining_gap": (
        "Gross et al., Table 5 (AG News, BERT-6, 1,000 train/test items per label): accuracy gap with and "
        "without pretraining 0.014 at W_S = 2,000 paragraphs, 0.021 at 5,000, 0.038 at 40,000, 0.051 at 90,000, "
        "0.095 at 6·10^6 (no pretraining: 0.840); the gap \"increases with the size of the pre-training dataset "
        "and with greater overlap between tokens\" (abstract)."),
    "encoders.gap_grows_with_ws": (
        "Gross et al., Table 5 (AG News): gap 0.014 at W_S = 2,000, 0.021 at 5,000, 0.051 at 90,000; Table 3 "
        "(FewRel, 10 labels): \"the accuracy gap decreases as W_S decreases, from 0.07 for W_S = 90,000 to "
        "~0.01 for W_S = 2,000\" (Sec. 2.2)."),
    "encoders.soft_committee": (
        "Gross et al., Table 8: FewRel, 10 labels: five pretrained BERT-1 variants (0.836-0.846) in a soft "
        "committee reach 0.866, \"identical to that achieved by a single BERT-6 model\"; 64 labels: committee "
        "0.634 vs BERT-6 0.625 (Sec. 5)."),
    "encoders.committee_latency": (
        "Gross et al., Sec. 5: latency counted in layers: BERT-6's \"is 25 (6 × 4 + 1)\", BERT-1 with two "
        "CLs' \"is only 7 (4 + 3)\"; no measured times."),
    "distill.student_beats_teachers": (
        "Tastet & Timiryasov, Fig. 1 (test cross-entropy, violins over at least 5 initialisations): \"a clear "
        "and gradual improvement between the teacher models, the student models trained from a single teacher, "
        "those trained from two teachers, and those trained from three teachers\" (Sec. 6). No loss values in "
        "the text."),
    "distill.more_teachers": (
        "Tastet & Timiryasov, Fig. 1 (test cross-entropy): improvement from one to two to three teachers, "
        "\"although we note that there are diminishing returns as we add more teachers\" (Sec. 6). Curves only."),
    "distill.blimp": (
        "Tastet & Timiryasov, Table 3 (BLiMP filtered, %): BabyLlama-2 run 1 73.2 vs its teachers 71.9 and "
        "72.1; run 2 71.8 vs 70.9 and 70.5. BLiMP has \"a significantly higher variability across runs\" "
        "(Sec. 6)."),
    "distill.ensemble_vs_student": (
        "Tastet & Timiryasov, Fig. 1 / Sec. 6: \"The cross-entropy loss of the direct ensemble of two teachers "
        "is almost as low as for the corresponding model obtained through distillation.\" No values."),
    "gaff.adapts_faster": (
        "GAFF (Folkerts et al.), Sec. 2.5.2, on Chen et al. 2024 (RoBERTa-base, embeddings reset every "
        "k = 1000): \"They achieve faster convergence during fine-tuning on new languages.\" GAFF's own nanoGPT "
        "test (Sec. 3.1.4, k = 250): both models converged \"around 230 iterations\", the Active Forgetting one "
        "with \"a more significant decrease in loss\", possibly because it was still close to its initial state; "
        "\"inconclusive results\". No numbers."),
    "gaff.pretrain_cost": (
        "GAFF (Folkerts et al.), Table 1 (Pythia 70M, reset every k = 1000, perplexity on tiny-textbooks): "
        "full Active Forgetting run 500.52 vs baseline 153.9."),
    "combo.sleep_distill": (
        "Untried: FORGETTER's paper leaves it to future work, \"The combination of FORGETTER with distillation "
        "is interesting but to be done.\" (Yamamoto & Miura, Limitations); BabyLlama-2 does not mention sleeps "
        "or optimizer resets."),
    "combo.grow_forget": (
        "Untried: no paper here combines layer-wise growth with forgetting. The incremental-training paper's "
        "one unexplored strategy is growing batch size and context with the layers (Li, Fung & Huang, Sec. V.B); "
        "GAFF's proposed extensions (Sec. 6) are embedding-ratio thresholds, its hyperparameters and timing, "
        "other GPT-NeoX models and a full replication of Chen et al. with an autoregressive model."),
}

FIELDS = ("id", "claim", "regime", "tinylm", "verdict", "why", "plots")  # a "claims" row: these, minus paper


def stat(values: list) -> str:
    """`4.895 ± 0.023 (n=3)`; decimals by magnitude, the std left out below two values."""
    d = describe(values)
    digits = 3 if abs(d["mean"]) < 10 else 1 if abs(d["mean"]) < 100 else 0
    spread = f" ± {d['std']:.{digits}f}" if d["std"] is not None else ""
    return f"{d['mean']:.{digits}f}{spread} (n={d['n']})"


def compared(claim_id: str, claim: str, regime: str, metric: str, a: tuple[str, list], b: tuple[str, list],
             paper_says_a_is: str) -> dict:
    """A row comparing arm a with arm b (name, per-seed values) on one metric."""
    v = verdict(a[1], b[1], paper_says_a_is, names=(a[0], b[0]))
    return {"id": claim_id, "claim": claim, "regime": regime,
            "tinylm": f"{metric}: {a[0]} {stat(a[1])} vs {b[0]} {stat(b[1])}", "verdict": v.label, "why": v.why}


def grow_tiny(r: dict) -> list[dict]:
    n, long, tps = r["n_steps_baseline"], r["incremental_runs_steps"], r["tokens_per_step"]
    regime = (f"{r['model']['name']} ({r['model']['flavour']}) on the bundled books (2k-token BPE); baseline "
              f"{n} steps, grown runs {long} ({n} in stages, then continual); {tps:,} tokens/step; {r['seeds']} seeds")
    return _grow_rows(r, regime)


def grow_regime(r: dict) -> list[dict]:
    n, long, tps, g = r["n_steps_baseline"], r["incremental_runs_steps"], r["tokens_per_step"], r["regime"]
    flat = ("reached" if g["reached"] else f"not reached by the ladder's end: the last rung is {g['n']}")
    regime = (f"{r['model']['name']} ({r['model']['flavour']}) on {r['corpus']} (2k-token BPE); the baseline's "
              f"flat point ({g['rule']}): {flat}; compared at N = {n} (baseline {n} steps, grown runs {long}); "
              f"{tps:,} tokens/step; {r['seeds']} seeds")
    return _grow_rows(r, regime)


def _grow_rows(r: dict, regime: str) -> list[dict]:
    n, arms = r["n_steps_baseline"], r["arms"]
    base = ("baseline", arms["baseline"])
    rows = []
    for name, arm in arms.items():
        if name == "baseline":
            continue
        stages = name.split("-S")[-1]
        at = arm["equal_compute_step"]["mean"]
        rows.append(compared("grow.equal_compute", f"Grown in {stages} stages, the model is behind the baseline at "
                             "the baseline's compute (higher validation loss).", regime,
                             f"val loss at the baseline's {n}-step FLOPs (step {at:.0f} of the grown run)",
                             (name, arm["val_equal_flops"]["values"]), (base[0], base[1]["val_equal_flops"]["values"]),
                             "higher"))
        rows.append(compared("grow.equal_steps", f"Grown in {stages} stages, the model is behind the baseline at "
                             f"equal steps (step {n}, the end of the stages).", regime, f"val loss at step {n}",
                             (name, arm["val_equal_steps"]["values"]), (base[0], base[1]["val_equal_steps"]["values"]),
                             "higher"))
    return rows


def forgetter_tiny(r: dict, tuned: str = "") -> list[dict]:
    arms, n = r["arms"], r["n_steps_normal"]
    long = round(arms["forgetter"]["steps"]["mean"])
    events = arms["forgetter"]["runs"][0]["events"]
    episode = f" (episodes of {events[0]['step']})" if events else ""
    regime = (f"L4-4(2)-128x4-32 (gemma) on Alice in Wonderland (2k-token BPE); {tuned}normal {n} steps, normal-3x "
              f"and FORGETTER {long} steps{episode}; {r['tokens_per_step']:,} tokens/step; {r['seeds']} seeds")
    best = {name: arm["best_val_all"]["values"] for name, arm in arms.items()}
    final = {name: [run["final_val"] for run in arm["runs"]] for name, arm in arms.items()}
    return [
        compared("forgetter.beats_normal", f"FORGETTER ({long} steps) reaches a lower validation loss than the best "
                 f"normal run ({n} steps).", regime, "best val loss", ("forgetter", best["forgetter"]),
                 ("normal", best["normal"]), "lower"),
        compared("forgetter.beats_normal", f"FORGETTER reaches a lower validation loss than a longer normal run (one "
                 f"linear decay over {long} steps).", regime, "best val loss", ("forgetter", best["forgetter"]),
                 ("normal-3x", best["normal-3x"]), "lower"),
        compared("forgetter.longer_normal_overfits", f"A normal run longer than {n} steps (one decay over {long}) "
                 "overfits: it ends with a higher validation loss.", regime, "final val loss",
                 ("normal-3x", final["normal-3x"]), ("normal", final["normal"]), "higher"),
    ]


def encoders_tiny(r: dict) -> list[dict]:
    gap, ft = r["agnews_gap"], r["finetune"]
    by_ws = gap["by_ws"]
    regime = (f"BERT L4-2-64x4 (64 wide, seq 64), MLM {r['pretrain_steps']} steps on W_S random Wikipedia "
              f"sentences; AG News fine-tuning {ft['epochs']:g} epochs at lr {ft['lr']:g} (one lr for both arms); "
              f"{r['seeds']} seeds")
    scratch = ("scratch", gap["scratch"]["values"])
    rows = [compared("encoders.pretraining_gap", f"Pretraining on W_S = {w['W_S']:,} sentences raises fine-tuned AG "
                     "News accuracy above the same encoder from scratch.", regime,
                     f"accuracy (T_M = {w['T_M']:,} task tokens missing)",
                     (f"W_S {w['W_S']:,}", w["accuracy"]["values"]),
                     scratch, "higher") for w in by_ws]
    small, large = min(by_ws, key=lambda w: w["W_S"]), max(by_ws, key=lambda w: w["W_S"])
    rows.append(compared("encoders.gap_grows_with_ws", f"The pretraining gap is larger at W_S = {large['W_S']:,} "
                         f"than at W_S = {small['W_S']:,}.", regime, "gap (pretrained - scratch, per seed)",
                         (f"W_S {large['W_S']:,}", large["gap"]["values"]),
                         (f"W_S {small['W_S']:,}", small["gap"]["values"]), "higher"))
    if "fewrel_committee" in r:
        c = r["fewrel_committee"]
        acc, lat = c["accuracy"], c["latency"]
        members = [m for m in acc if m not in ("deep", "committee")]
        regime_c = (f"FewRel, 16 relations ({c['test_items']} test items): {', '.join(members)} and the 4-block "
                    f"encoder, MLM {r['pretrain_steps']} steps on the largest W_S ({large['W_S']:,}); fine-tuned "
                    f"{ft['epochs']:g} epochs; {acc['deep']['n']} seeds")
        rows.append(compared("encoders.soft_committee", "A soft committee of one-block encoders is at least as "
                             "accurate as one deeper encoder (tested as: higher).", regime_c, "accuracy",
                             ("committee", acc["committee"]["values"]), ("deep", acc["deep"]["values"]), "higher"))
        row = compared("encoders.committee_latency", "The committee of shallow encoders has a lower latency than "
                       "the deeper encoder.", regime_c, "ms per batch of 32",
                       ("committee", [lat["committee"]["ms_per_batch"]]), ("deep", [lat["deep"]["ms_per_batch"]]),
                       "lower")
        row["tinylm"] += (f"; layers {lat['committee']['layers']} vs {lat['deep']['layers']} "
                          f"(members run {lat['committee'].get('members_run', 'together')})")
        rows.append(row)
    return rows


def finetune_lr_grid(r: dict) -> list[dict]:
    pre, scr = r["pretrained"], r["scratch"]
    tokens = r["pretrain_final"].get("tokens")
    regime = (f"BERT {r['model']}, MLM {r['pretrain_steps']} steps" + (f" ({tokens:,} tokens)" if tokens else "")
              + f" on the Wikipedia sentences; {r['task']} {r['train_items']:,} train / {r['test_items']:,} test "
              f"items, "
              f"{r['epochs']:g} epochs, lr chosen per arm from {', '.join(f'{x:g}' for x in r['lr_grid'])} "
              f"(pretrained {pre['chosen_lr']:g}, scratch {scr['chosen_lr']:g}); {r['seeds']} seeds")
    return [compared("encoders.pretraining_gap", "Pretraining raises fine-tuned AG News accuracy above the same "
                     "encoder from scratch, each arm at its own tuned learning rate.", regime, "accuracy",
                     ("pretrained", pre["values"]), ("scratch", scr["values"]), "higher")]


def distill_tiny(r: dict) -> list[dict]:
    g = r["groups"]
    regime = (f"L4-4-128x4 (llama) on the bundled books (4k-token BPE); teachers and students {r['steps']} steps, "
              f"{r['tokens_per_step']:,} tokens/step, distillation alpha 0.5, T 1; {r['seeds']} seeds; BLiMP "
              f"{r['blimp_limit_per_paradigm']} pairs per paradigm")
    val = {name: grp["val_loss"]["values"] for name, grp in g.items()}
    blimp = {name: grp["blimp"]["values"] for name, grp in g.items()}
    rows = []
    for k in ("2T", "3T"):
        rows.append(compared("distill.student_beats_teachers", f"A student distilled from {k[0]} same-size teachers "
                             "has a lower validation loss than the teachers.", regime, "val loss",
                             (f"student-{k}", val[f"student-{k}"]), ("teacher", val["teacher"]), "lower"))
    rows.append(compared("distill.more_teachers", "Three teachers give a lower student validation loss than two.",
                         regime, "val loss", ("student-3T", val["student-3T"]), ("student-2T", val["student-2T"]),
                         "lower"))
    for k in ("2T", "3T"):
        rows.append(compared("distill.blimp", f"A student distilled from {k[0]} teachers scores higher on BLiMP than "
                             "the teachers.", regime, "BLiMP mean over paradigms",
                             (f"student-{k}", blimp[f"student-{k}"]), ("teacher", blimp["teacher"]), "higher"))
    if "ensemble-2T" in g:
        rows.append(compared("distill.ensemble_vs_student", "The student of two teachers has a lower validation loss "
                             "than the two teachers' direct ensemble (mean logits).", regime, "val loss",
                             ("student-2T", val["student-2T"]), ("ensemble-2T", val["ensemble-2T"]), "lower"))
    return rows


def gaff_tiny(r: dict) -> list[dict]:
    arms = r["arms"]
    regime = (f"L4-4-128x4 (neox), pretrained {r['pretrain_steps']} steps on the bundled English books (4k-token "
              f"BPE), embeddings reset every k = {r['k']}; adapted {r['adapt_steps']} steps to German (Grimm, a "
              f"new 4k BPE), fresh embeddings, body frozen; {r['seeds']} seeds")
    af, std = arms["active-forgetting"], arms["standard"]

    def pair(key: str) -> tuple[tuple, tuple]:
        return ("active-forgetting", af[key]["values"]), ("standard", std[key]["values"])

    return [
        compared("gaff.adapts_faster", "Pretrained with active forgetting, the model adapts to a new language faster: "
                 "lower mean training loss over the adaptation.", regime, "adaptation loss AUC (mean height)",
                 *pair("adapt_loss_auc"), "lower"),
        compared("gaff.adapts_faster", "Pretrained with active forgetting, the model reaches the target loss in fewer "
                 "adaptation steps.", regime, f"steps to loss {r['target_loss']:.3f} (never reached counts as "
                 f"{r['adapt_steps']})", *pair("steps_to_target"), "lower"),
        compared("gaff.adapts_faster", "Pretrained with active forgetting, the model ends the adaptation with a lower "
                 "German validation loss.", regime, "German val loss after adaptation", *pair("adapt_val_loss_de"),
                 "lower"),
        compared("gaff.pretrain_cost", "Active forgetting costs pretraining quality: higher English validation loss "
                 "at the end of pretraining.", regime, "English val loss after pretraining",
                 *pair("pretrain_val_loss_en"), "higher"),
    ]



def forgetter_regime(r: dict) -> list[dict]:
    g = r["regime"]
    edge = " (at the ladder's edge)" if g["at_edge"] else ""
    return forgetter_tiny(r, f"N tuned first ({g['rule']}: N = {g['n']}{edge}, forgetter-ladder.json); ")


def encoders_regime(r: dict) -> list[dict]:
    g = r["regime"]
    flat = "flat" if g["reached"] else "not flat by the ladder's end: its last rung"
    regime = (f"BERT {r['model']} (64 wide, seq 64), MLM {g['pretrain_steps']} steps ({flat}; encoders-ladder.json) on "
              f"W_S random Wikipedia sentences; {r['task']} {r['per_label'][0]}/{r['per_label'][1]} per label, "
              f"{r['epochs']} epochs, each arm's rate chosen on a validation tenth from {r['lr_grid']}; "
              f"{r['seeds']} fine-tuning seeds")
    rows = []
    for b in r["by_ws"]:
        lrs = f"rates {b['pretrained']['chosen_lr']:g} / {b['scratch']['chosen_lr']:g}"
        rows.append(compared("encoders.pretraining_gap", f"Pretrained on W_S = {b['W_S']:,} sentences, the encoder "
                             "fine-tunes to a higher accuracy than from scratch.", regime, f"test accuracy ({lrs})",
                             ("pretrained", b["pretrained"]["values"]), ("scratch", b["scratch"]["values"]), "higher"))
    first, last = r["by_ws"][0], r["by_ws"][-1]
    rows.append(compared("encoders.gap_grows_with_ws", f"The gap is larger at W_S = {last['W_S']:,} than at "
                         f"{first['W_S']:,}.", regime, "gap (pretrained - scratch)", (f"W_S {last['W_S']:,}", last["gap"]),
                         (f"W_S {first['W_S']:,}", first["gap"]), "higher"))
    return rows


def combinations(r: dict) -> list[dict]:
    p1, p2, s = r["sleep_distill"], r["grow_forget"], r["settings"]
    groups = p1["groups"]
    values = {g: [x["val_loss"] for x in groups[g]["runs"]] for g in ("teacher", "student", "student+sleep")}
    regime1 = (f"L4-4-128x4 (llama), bundled books (4k BPE), {p1['steps']} steps, 2 teachers, students distilled "
               f"from both (alpha 0.5, T 1); sleep: episodes of {p1['sleep_episode_steps']} steps, the paper's policy; "
               f"{s['seeds']} student seeds")
    regime2 = (f"L4-4-128x4 (neox), {p2['pretrain_steps']} English steps (every arm), forget every {p2['k']}, grow 2 "
               f"stages; German adaptation {p2['adapt_steps']} steps (fresh embeddings, frozen body); {s['seeds']} seeds")
    arms = p2["arms"]

    def per_seed(arm: str, key: str) -> list:
        return [p2["adapt_steps"] if x[key] is None else x[key] for x in arms[arm]["runs"]]
    return [
        compared("combo.sleep_distill", "Students distilled with FORGETTER's sleeps end below plain distilled "
                 "students.", regime1, "val loss", ("student+sleep", values["student+sleep"]),
                 ("student", values["student"]), "lower"),
        compared("combo.sleep_distill", "Students distilled with sleeps end below their teachers.", regime1,
                 "val loss", ("student+sleep", values["student+sleep"]), ("teacher", values["teacher"]), "lower"),
        compared("combo.grow_forget", "A model grown with active forgetting adapts to German faster than one grown "
                 "without it.", regime2, "steps to the target loss", ("grow+forget", per_seed("grow+forget",
                                                                                              "steps_to_target")),
                 ("grow", per_seed("grow", "steps_to_target")), "lower"),
        compared("combo.grow_forget", "A model grown with active forgetting ends its German adaptation lower than one "
                 "grown without it.", regime2, "German val loss after adaptation",
                 ("grow+forget", per_seed("grow+forget", "adapt_val_loss_de")),
                 ("grow", per_seed("grow", "adapt_val_loss_de")), "lower"),
    ]


def is_regime(result: dict) -> bool:
    """A ladder's measurement of a regime (rendered in its own section, not a claim)."""
    return str(result.get("experiment", "")).endswith("-ladder")

EXTRACTORS = {"grow-tiny": grow_tiny, "forgetter-tiny": forgetter_tiny, "encoders-tiny": encoders_tiny,
              "finetune-lr-grid": finetune_lr_grid, "distill-tiny": distill_tiny, "gaff-tiny": gaff_tiny,
              "grow-regime": grow_regime, "forgetter-regime": forgetter_regime, "encoders-regime": encoders_regime,
              "combinations": combinations}


def claim_rows(result: dict, source: str, plots: list[str]) -> list[dict]:
    """The claim rows of one results JSON (`source`: its file name; `plots`: its experiment's PNGs)."""
    experiment = result.get("experiment")
    if "claims" in result:
        rows = []
        for i, given in enumerate(result["claims"]):
            missing = [f for f in FIELDS if f not in given and f != "plots"]
            if missing:
                raise ValueError(f"{source}: claims[{i}] lacks {', '.join(missing)}")
            if not is_verdict(given["verdict"]):
                raise ValueError(f"{source}: claims[{i}] verdict {given['verdict']!r} is not one the rule gives "
                                 f"(experiments/verdict.py)")
            rows.append({f: given.get(f, plots if f == "plots" else None) for f in FIELDS})
    elif experiment in EXTRACTORS:
        rows = [{**row, "plots": plots} for row in EXTRACTORS[experiment](result)]
    else:
        return []
    for row in rows:
        if row["id"] not in PAPER:
            raise ValueError(f"{source}: claim id {row['id']!r} has no PAPER entry in experiments/claims.py")
        row.update(paper=PAPER[row["id"]], experiment=experiment, source=source)
    return rows


def plots_by_result(results_dir: Path, stems: list[str]) -> dict[str, list[str]]:
    """Each PNG goes to the results JSON whose file stem is the longest prefix of its name: `grow-tiny-val-loss.png`
    to grow-tiny.json, `grow-regime-L4-4-64x4.png` to grow-regime-L4-4-64x4.json, not to grow-regime.json."""
    owned = {e: [] for e in stems}
    for png in sorted(Path(results_dir).glob("*.png")):
        owners = [e for e in stems if png.stem == e or png.stem.startswith(e + "-")]
        if owners:
            owned[max(owners, key=len)].append(png.name)
    return owned


def load_results(results_dir: Path) -> list[tuple[str, dict]]:
    """(file name, parsed JSON) of every results JSON, by name."""
    return [(p.name, json.loads(p.read_text(encoding="utf-8"))) for p in sorted(Path(results_dir).glob("*.json"))]


def all_rows(results_dir: Path) -> tuple[list[dict], list[tuple[str, dict]]]:
    """Every claim row of the results directory, and the results (file name, JSON) that gave none."""
    results = load_results(results_dir)
    plots = plots_by_result(results_dir, [Path(name).stem for name, _ in results])
    rows, silent = [], []
    for name, result in results:
        found = claim_rows(result, name, plots[Path(name).stem])
        rows.extend(found)
        if not found and not is_regime(result):
            silent.append((name, result))
    return rows, silent
