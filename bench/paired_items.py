"""What per-item results cost `tinylm eval`, and how long `tinylm compare --paired` takes.

1. On the test fixtures (the 5 BLiMP paradigms, 200 pairs; the 30 HellaSwag items), with a tiny
   random Llama (`--preset`) and the shipped GPT-2 tokenizer: the evaluation's wall time beside the
   time to build the per-item records and to write `<task>.items.jsonl` (atomic), and their share.
2. At full scale with synthetic verdicts (67 paradigms x 1,000 pairs = BLiMP; 10,042 HellaSwag
   items): building and writing the records, the file size, and `compare_task` (McNemar, the
   stratified bootstrap with `--resamples`, per field and paradigm) on them.

Medians over `--rounds`. Prints JSON.

    python bench/paired_items.py [--preset L2-4-32x2] [--rounds 5] [--resamples 10000]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures"


def _median_s(fn, rounds: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(rounds):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def fixture_cost(preset: str, rounds: int, tmp: Path) -> dict:
    from tinylm.data.tokenizer import load_tokenizer, special_ids
    from tinylm.eval.items import write_items
    from tinylm.eval.minimal_pairs import evaluate_minimal_pairs, read_minimal_pairs
    from tinylm.eval.multiple_choice import evaluate_hellaswag, read_hellaswag
    from tinylm.eval.scoring import Scorer
    from tinylm.models import build_model, resolve_model_config

    torch.manual_seed(0)
    tok = load_tokenizer("gpt2")
    model = build_model(resolve_model_config(preset, flavour="llama", vocab_size=50257, max_seq_len=256)).eval()
    scorer, specials = Scorer.for_model(model), special_ids(tok)
    pairs, (items, _) = read_minimal_pairs(FIXTURES / "blimp"), read_hellaswag(FIXTURES / "hellaswag" / "val-first30.txt")
    out = {}
    for name, evaluate, n in (("blimp", lambda: evaluate_minimal_pairs(scorer, tok, specials, pairs), len(pairs)),
                              ("hellaswag", lambda: evaluate_hellaswag(scorer, tok, specials, items), len(items))):
        eval_s, result = _median_s(evaluate, rounds)
        records = result["per_item"]
        write_s, path = _median_s(lambda: write_items(tmp, name, records), rounds)
        build_s = _build_time(name, result, pairs, items, rounds)
        out[name] = {"items": n, "eval_s": round(eval_s, 4), "build_records_ms": round(build_s * 1e3, 3),
                     "write_items_ms": round(write_s * 1e3, 3), "items_file_bytes": path.stat().st_size,
                     "items_share_of_eval": round((build_s + write_s) / eval_s, 5)}
    return out


def _build_time(name, result, pairs, items, rounds) -> float:
    """The records' construction alone, from the scores the evaluation returned."""
    from tinylm.eval.items import choice_records, minimal_pair_records

    records = result["per_item"]
    if name == "blimp":
        good = np.array([r["logprob_good"] for r in records])
        bad = np.array([r["logprob_bad"] for r in records])
        return _median_s(lambda: minimal_pair_records(pairs, good, bad), rounds)[0]
    lls = np.array([r["logprobs"] for r in records])
    chars = np.array([r["ending_chars"] for r in records], dtype=np.float64)
    tokens = [t for r in records for t in r["ending_tokens"]]
    return _median_s(lambda: choice_records(items, lls, chars, tokens), rounds)[0]


def full_scale(rounds: int, resamples: int, tmp: Path) -> dict:
    from tinylm.eval.items import choice_records, minimal_pair_records, write_items
    from tinylm.eval.minimal_pairs import MinimalPair
    from tinylm.eval.multiple_choice import ChoiceItem
    from tinylm.eval.paired import compare_task

    rng = np.random.default_rng(0)
    fields = ("morphology", "syntax", "semantics", "syntax/semantics")
    pairs = [MinimalPair("g", "b", f"paradigm_{p:02d}", fields[p % 4], f"p{p}.jsonl", i + 1, "term", i)
             for p in range(67) for i in range(1000)]
    sides = []
    for shift in (0.0, 0.3):
        good, bad = rng.normal(-30, 3, len(pairs)) + shift, rng.normal(-31, 3, len(pairs))
        build_s, records = _median_s(lambda: minimal_pair_records(pairs, good, bad), rounds)
        sides.append(records)
    write_s, path = _median_s(lambda: write_items(tmp, "blimp", sides[0]), rounds)
    compare_s, result = _median_s(lambda: compare_task("blimp", "minimal_pairs", [sides[0]], [sides[1]],
                                                       resamples=resamples), rounds)
    items = [ChoiceItem("q", ("a", "b", "c", "d"), int(g), i, i) for i, g in enumerate(rng.integers(4, size=10042))]
    lls, chars = rng.normal(-20, 4, (10042, 4)), rng.integers(10, 80, (10042, 4)).astype(np.float64)
    hs_build_s, hs = _median_s(lambda: choice_records(items, lls, chars, [5] * 4 * 10042), rounds)
    hs_write_s, hs_path = _median_s(lambda: write_items(tmp, "hellaswag", hs), rounds)
    other = choice_records(items, lls + rng.normal(0, 1, lls.shape), chars, [5] * 4 * 10042)
    hs_compare_s, _ = _median_s(lambda: compare_task("hellaswag", "multiple_choice", [hs], [other],
                                                     resamples=resamples), rounds)
    mean = result["rows"][0]
    return {"blimp": {"items": len(pairs), "build_records_s": round(build_s, 3), "write_items_s": round(write_s, 3),
                      "items_file_mb": round(path.stat().st_size / 1e6, 2), "compare_s": round(compare_s, 3),
                      "resamples": resamples, "example_mean_row": {k: mean[k] for k in ("difference", "ci", "mcnemar_p")}},
            "hellaswag": {"items": len(items), "build_records_s": round(hs_build_s, 3),
                          "write_items_s": round(hs_write_s, 3), "items_file_mb": round(hs_path.stat().st_size / 1e6, 2),
                          "compare_s": round(hs_compare_s, 3), "resamples": resamples}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="L2-4-32x2", help="model spec of the random model scored on the fixtures")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--resamples", type=int, default=10_000)
    args = ap.parse_args()
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        fixtures = fixture_cost(args.preset, args.rounds, Path(tmp))
        scale = full_scale(args.rounds, args.resamples, Path(tmp))
    print(json.dumps({"benchmark": "per-item results and paired comparison", "preset": args.preset,
                      "rounds": args.rounds, "fixtures": fixtures, "full_scale_synthetic": scale,
                      "load_avg_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],
                      "torch": torch.__version__, "threads": torch.get_num_threads(),
                      "cpu": platform.processor() or platform.machine()}, indent=1))


if __name__ == "__main__":
    main()
