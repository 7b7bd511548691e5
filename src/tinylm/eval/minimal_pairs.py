"""Minimal pairs (BLiMP and the BabyLM filtered/supplement sets): which sentence is more probable?

Semantics, as the reference pipelines compute them:

* decoders score each sentence whole, conditioned on the tokenizer's start token: BOS when it has
  one (``<s>`` for our ``bpe:N``), else EOS (``<|endoftext|>`` for GPT-2 / NeoX) - the prefix token
  lm-evaluation-harness puts before an empty context, and what the BabyLM pipeline prepends;
* encoders score the pseudo-log-likelihood: ``[CLS] sentence [SEP]`` with each token masked in
  turn (Salazar et al. 2020), as the BabyLM pipeline's MLM backend;
* a pair is right when log p(good) > log p(bad); an exact tie counts as right, because both
  references take the argmax over [good, bad] and argmax picks the first (ties are reported);
* accuracy per paradigm (``UID``, or the file name when a file has none, as the BabyLM supplement
  files), per field (pooled over pairs, ``syntax_semantics`` spelled ``syntax/semantics`` as
  BabyLM does), and the headline: the unweighted mean over paradigms.

Which reference each setting matches (tests/eval/test_parity.py checks both, sentence by sentence,
within 1e-4 in fp32 on an exported model):

* the default, no leading space: minicons ``IncrementalLMScorer.sequence_score(sentences,
  reduction=lambda x: x.sum(0).item(), bos_token=True)`` (the BabyLM pipeline's call: the BOS text glued
  to the sentence), and lm-evaluation-harness <= 0.3;
* ``leading_space=True`` (``tinylm eval --leading-space``): lm-evaluation-harness >= 0.4, whose BLiMP
  task has an empty context (the start token, ``prefix_token_id``) and the target delimiter " " before
  each sentence. The two conventions give different log-probabilities and can flip pairs (on a
  12-step model, 7.5% of 80 fixture pairs), so results are comparable only under the same one.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tinylm.errors import UserError
from tinylm.eval.items import minimal_pair_records
from tinylm.eval.jsonl import read_jsonl
from tinylm.eval.scoring import Scorer, encode_texts

FIELD_SPELLING = {"syntax_semantics": "syntax/semantics"}
NO_FIELD = "supplement"  # the BabyLM pipeline's field for files without one


@dataclass(frozen=True)
class MinimalPair:
    good: str
    bad: str
    paradigm: str
    field: str
    source: str   # file name
    line: int
    term: str = ""    # the file's linguistics_term (BLiMP's phenomenon), "" when it has none
    index: int = 0    # the pair's place within its paradigm (0-based, file order): its id with the paradigm


def _files(path: Path) -> list[Path]:
    path = Path(path).expanduser()
    if path.is_file():
        return [path]
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix == ".jsonl" and p.is_file())
        if not files:
            raise UserError(f"{path} holds no .jsonl files: point --blimp at a directory of BLiMP JSONL files "
                            "(e.g. the data/ folder of github.com/alexwarstadt/blimp) or at one file")
        return files
    raise UserError(f"{path} does not exist: give a BLiMP directory (e.g. the data/ folder of "
                    "github.com/alexwarstadt/blimp) or a JSONL file")


def read_minimal_pairs(path) -> list[MinimalPair]:
    """Every good/bad pair in a JSONL file or a directory of them, whatever other fields they carry."""
    pairs = []
    counts: dict[str, int] = defaultdict(int)
    for file in _files(path):
        for number, obj in read_jsonl(file, "minimal-pair"):
            good, bad = obj.get("sentence_good"), obj.get("sentence_bad")
            if not isinstance(good, str) or not isinstance(bad, str):
                missing = [k for k in ("sentence_good", "sentence_bad") if not isinstance(obj.get(k), str)]
                raise UserError(f"{file}:{number}: no minimal pair ({' and '.join(missing)} missing or not text); "
                                "each line needs \"sentence_good\" and \"sentence_bad\" strings")
            if not good.strip() or not bad.strip():
                raise UserError(f"{file}:{number}: an empty sentence cannot be scored; fix or remove the line")
            paradigm = obj.get("UID") or file.stem
            field = obj.get("field") or NO_FIELD
            pairs.append(MinimalPair(good, bad, str(paradigm), FIELD_SPELLING.get(field, str(field)), file.name, number,
                                     str(obj.get("linguistics_term") or ""), counts[str(paradigm)]))
            counts[str(paradigm)] += 1
    return pairs


def limit_per_paradigm(pairs: list[MinimalPair], limit: int | None) -> list[MinimalPair]:
    """The first ``limit`` pairs of each paradigm (lm-evaluation-harness's --limit is per task)."""
    if limit is None:
        return pairs
    taken: dict[str, int] = defaultdict(int)
    out = []
    for p in pairs:
        if taken[p.paradigm] < limit:
            taken[p.paradigm] += 1
            out.append(p)
    return out


def start_token(tokenizer, special_ids: dict) -> tuple[int, str, str]:
    """(id, text, role) of the token each sentence is conditioned on: BOS, else EOS."""
    for role in ("bos", "eos"):
        if role in special_ids:
            token_id = int(special_ids[role])
            return token_id, tokenizer.id_to_token(token_id), role
    raise UserError("the tokenizer has neither a BOS nor an EOS token, so a sentence's first token cannot be "
                    "scored by a decoder; use a tokenizer with <s> or <|endoftext|> (gpt2, gpt-neox-20b, bpe:N)")


def encoder_specials(special_ids: dict) -> dict[str, int]:
    missing = [r for r in ("cls", "sep", "mask") if r not in special_ids]
    if missing:
        raise UserError(f"pseudo-log-likelihood needs [CLS], [SEP] and [MASK] tokens; this tokenizer lacks "
                        f"{', '.join(missing)}: evaluate an encoder trained with bert-base-uncased or wordpiece:N")
    return {f"{r}_id": int(special_ids[r]) for r in ("cls", "sep", "mask")}


def sentence_logprobs(scorer: Scorer, tokenizer, special_ids: dict, sentences: list[str],
                      leading_space: bool = False, description: str = "sentences") -> tuple[np.ndarray, dict]:
    """Log-probability (decoders) or PLL (encoders) of each sentence, and how it was computed."""
    prefix = " " if leading_space else ""
    tokens = encode_texts(tokenizer, [prefix + s for s in sentences])
    for s, t in zip(sentences, tokens):
        if not t:
            raise UserError(f"the sentence {s!r} tokenizes to nothing; remove it from the data")
    scorer.begin(description, tokens)
    if scorer.kind == "decoder":
        token_id, text, role = start_token(tokenizer, special_ids)
        scores, truncated = scorer.causal([[token_id]] * len(tokens), tokens)
        how = {"method": "causal log-probability", "start_token": text, "start_token_id": token_id,
               "start_token_role": role}
    else:
        specials = encoder_specials(special_ids)
        scores, truncated = scorer.pll([[]] * len(tokens), tokens, **specials)
        how = {"method": "pseudo-log-likelihood (Salazar et al. 2020), [CLS] sentence [SEP], one mask at a time",
               "start_token": tokenizer.id_to_token(specials["cls_id"]), "start_token_id": specials["cls_id"]}
    how.update({"leading_space": leading_space, "truncated": truncated, "tokens": int(sum(map(len, tokens)))})
    return scores, how


def evaluate_minimal_pairs(scorer: Scorer, tokenizer, special_ids: dict, pairs: list[MinimalPair],
                           leading_space: bool = False) -> dict:
    """Accuracy per paradigm, per field and overall (unweighted mean over paradigms), and under "per_item"
    each pair's log-probabilities and verdict (for paired comparisons; the caller writes them apart)."""
    if not pairs:
        raise UserError("no minimal pairs to evaluate")
    started = time.perf_counter()
    sentences = [p.good for p in pairs] + [p.bad for p in pairs]
    scores, how = sentence_logprobs(scorer, tokenizer, special_ids, sentences, leading_space, "BLiMP")
    good, bad = scores[:len(pairs)], scores[len(pairs):]
    correct = good >= bad
    ties = good == bad
    paradigms: dict[str, dict] = {}
    for p, ok, tie in zip(pairs, correct.tolist(), ties.tolist()):
        entry = paradigms.setdefault(p.paradigm, {"field": p.field, "file": p.source, "pairs": 0, "correct": 0,
                                                  "ties": 0})
        entry["pairs"] += 1
        entry["correct"] += ok
        entry["ties"] += tie
    fields: dict[str, dict] = {}
    for name, e in sorted(paradigms.items()):
        e["accuracy"] = e["correct"] / e["pairs"]
        f = fields.setdefault(e["field"], {"pairs": 0, "correct": 0, "paradigms": 0, "_accs": []})
        f["pairs"] += e["pairs"]
        f["correct"] += e["correct"]
        f["paradigms"] += 1
        f["_accs"].append(e["accuracy"])
    for f in fields.values():
        f["accuracy"] = f["correct"] / f["pairs"]
        f["paradigm_mean"] = float(np.mean(f.pop("_accs")))
    seconds = time.perf_counter() - started
    return {
        "mean": float(np.mean([e["accuracy"] for e in paradigms.values()])),
        "pair_accuracy": float(correct.mean()),
        "pairs": len(pairs), "correct": int(correct.sum()), "ties": int(ties.sum()),
        "paradigm_count": len(paradigms),
        "scoring": {**how, "pair_rule": "correct when log p(good) >= log p(bad) (a tie goes to good, as argmax)",
                    "precision": scorer.precision},
        "fields": dict(sorted(fields.items())),
        "paradigms": dict(sorted(paradigms.items())),
        "seconds": round(seconds, 2), "pairs_per_s": round(len(pairs) / max(seconds, 1e-9), 1),
        "per_item": minimal_pair_records(pairs, good, bad),  # RUN/eval/<name>.items.jsonl; not in <name>.json
    }
