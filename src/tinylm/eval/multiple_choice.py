"""HellaSwag as lm-evaluation-harness scores it: pick the most likely of four endings.

* the query is ``preprocess(activity_label + ": " + ctx_a + " " + ctx_b.capitalize())`` and each
  choice ``preprocess(ending)`` (``[title]`` -> ". ", other ``[...]`` removed, double spaces
  collapsed); the request is (query, " " + choice), tokenized as lm-eval's ``_encode_pair``
  (encode query and query + " " + choice; the continuation is the tail beyond the query's tokens);
  no start token is added, because the context is not empty (lm-eval's ``HFLM`` would add the
  tokenizer's own special-token template here; decoder tokenizers have none, so the two agree);
* ``acc``: argmax of the summed log-likelihood of the ending; ``acc_norm``: argmax of that sum
  divided by the ending's length in characters (without the leading space). Two numbers, both
  always reported, never mixed.

Two input formats: the original JSONL (``ctx_a``, ``ctx_b``, ``activity_label``, ``endings``,
``label``) and the 6-lines-per-item text format (``activity label: context``, gold index, four
endings) of github.com/klosax/hellaswag_text_data, already cleaned up, with the context joined and
``ctx_b`` not capitalised ("... on a roof. he"), so its queries differ from lm-eval's by that letter.

Two query formats (``--hellaswag-format``), because the two references differ:

* ``lm-eval``: ``ctx_b.capitalize()`` as lm-eval's ``process_docs`` (which also lowercases the rest of
  ``ctx_b``). Exact from the JSONL fields; from the text format it is rebuilt by capitalising the
  context's last fragment (after its final ``.``/``!``/``?``) when that starts with a small letter, which
  is where ``ctx_b`` stands (checked against the JSONL of the same items in the tests);
* ``llama.cpp``: the context as the text file has it (``ctx_b`` as written), what llama.cpp's
  HellaSwag scorer reads; on the JSONL, ``ctx_a + " " + ctx_b`` cleaned up the same way.

The default is each file's own: ``lm-eval`` for JSONL, ``llama.cpp`` for the text format, whose numbers
then compare with llama.cpp's published ones (on 200 items the two formats differ in 1-2 predictions).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tinylm.errors import UserError
from tinylm.eval.items import choice_records
from tinylm.eval.jsonl import read_jsonl
from tinylm.eval.minimal_pairs import encoder_specials
from tinylm.eval.scoring import Scorer, encode_texts

N_ENDINGS = 4
FORMATS = ("lm-eval", "llama.cpp")  # how the query is built (see the module docstring)
_LAST_FRAGMENT = re.compile(r"(.*[.!?][\"')]*\s+)?(.*)", re.S)


@dataclass(frozen=True)
class ChoiceItem:
    query: str
    choices: tuple[str, ...]
    gold: int
    line: int
    index: int | str = 0  # the dataset's `ind` (JSONL) or the item's place in the file (0-based): its id


def preprocess(text: str) -> str:
    """lm-evaluation-harness's HellaSwag cleanup (WikiHow's bracket artefacts)."""
    text = text.strip()
    text = text.replace(" [title]", ". ")
    text = re.sub("\\[.*?\\]", "", text)
    return text.replace("  ", " ")


def _gold(value, where: str, n: int) -> int:
    try:
        gold = int(str(value).strip())
    except ValueError:
        gold = -1
    if not 0 <= gold < n:
        raise UserError(f"{where}: the gold label {value!r} is not an index 0-{n - 1}; HellaSwag items need their "
                        "label (the test split has none: use the validation split)")
    return gold


def _check_choices(choices: list[str], where: str) -> tuple[str, ...]:
    if len(choices) != N_ENDINGS:
        raise UserError(f"{where}: {len(choices)} endings; a HellaSwag item has exactly {N_ENDINGS}")
    if any(not c for c in choices):
        raise UserError(f"{where}: an ending is empty after cleanup, so acc_norm cannot divide by its length")
    return tuple(choices)


def capitalize_last_fragment(query: str) -> str:
    """lm-eval's ``ctx_b.capitalize()`` rebuilt on a joined ``"label: ctx_a ctx_b"`` text: the fragment
    after the context's last sentence end, when it starts with a small letter (then it is ``ctx_b``)."""
    label, sep, ctx = query.partition(": ")
    if not sep:
        label, ctx = "", query
    head, tail = _LAST_FRAGMENT.fullmatch(ctx).groups()
    if not tail[:1].islower():
        return query
    return f"{label}{sep}{head or ''}{tail.capitalize()}"


def _read_jsonl(path: Path, query_format: str) -> list[ChoiceItem]:
    items = []
    for number, obj in read_jsonl(path, "HellaSwag"):
        where = f"{path}:{number}"
        missing = [k for k in ("ctx_a", "ctx_b", "activity_label", "endings", "label") if k not in obj]
        if missing:
            raise UserError(f"{where}: no {', '.join(missing)}; HellaSwag JSONL lines need ctx_a, ctx_b, "
                            "activity_label, endings (4) and label")
        if not isinstance(obj["endings"], list) or not all(isinstance(e, str) for e in obj["endings"]):
            raise UserError(f"{where}: `endings` must be a list of {N_ENDINGS} strings")
        ctx_b = obj["ctx_b"].capitalize() if query_format == "lm-eval" else obj["ctx_b"]
        ctx = obj["ctx_a"] + " " + ctx_b
        choices = _check_choices([preprocess(e) for e in obj["endings"]], where)
        items.append(ChoiceItem(preprocess(obj["activity_label"] + ": " + ctx), choices,
                                _gold(obj["label"], where, N_ENDINGS), number, obj.get("ind", len(items))))
    return items


def _read_text(path: Path, query_format: str) -> list[ChoiceItem]:
    lines = path.read_text(encoding="utf-8").splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        raise UserError(f"{path} is empty: a HellaSwag text file has 6 lines per item (context, gold index, 4 endings)")
    size = 2 + N_ENDINGS
    items = []
    for start in range(0, len(lines), size):
        block = lines[start:start + size]
        gold_line = block[1].strip() if len(block) > 1 else ""
        if not gold_line.isdigit():
            hint = ("; the item before it has the wrong number of endings" if start else
                    "; is this a HellaSwag text file?")
            raise UserError(f"{path}:{start + 2}: expected the gold index (0-3) of the item starting at line "
                            f"{start + 1}, got {gold_line[:40]!r}: an item is 6 lines (context, gold index, "
                            f"4 endings){hint}")
        if len(block) < size:
            raise UserError(f"{path}:{start + 1}: the last item has {len(block) - 2} endings; a HellaSwag item has "
                            f"exactly {N_ENDINGS} (6 lines per item)")
        where = f"{path}:{start + 1}"
        choices = _check_choices([preprocess(e) for e in block[2:]], where)
        query = preprocess(block[0])
        if query_format == "lm-eval":
            query = capitalize_last_fragment(query)
        items.append(ChoiceItem(query, choices, _gold(gold_line, f"{path}:{start + 2}", N_ENDINGS), start + 1,
                                len(items)))
    return items


def read_hellaswag(path, query_format: str | None = None) -> tuple[list[ChoiceItem], str]:
    """Items and the file format ("jsonl" or "text", judged by the first non-blank character); the queries
    are built as ``query_format`` says (``FORMATS``; None: lm-eval for JSONL, llama.cpp for text)."""
    if query_format is not None and query_format not in FORMATS:
        raise UserError(f"HellaSwag format {query_format!r}: choose {' or '.join(FORMATS)}")
    path = Path(path).expanduser()
    if not path.is_file():
        raise UserError(f"{path} does not exist: give a HellaSwag file (JSONL, or the 6-lines-per-item text "
                        "format, e.g. hellaswag_val_full.txt of github.com/klosax/hellaswag_text_data)")
    try:
        head = path.read_text(encoding="utf-8").lstrip()[:1]
    except UnicodeDecodeError as e:
        raise UserError(f"{path} is not UTF-8 text ({e}); give a HellaSwag JSONL or text file") from e
    if head == "{":
        return _read_jsonl(path, query_format or "lm-eval"), "jsonl"
    return _read_text(path, query_format or "llama.cpp"), "text"


def _encode_pairs(tokenizer, items: list[ChoiceItem]) -> tuple[list[list[int]], list[list[int]]]:
    """lm-eval's ``_encode_pair`` for every (query, " " + choice): context tokens and continuation tokens."""
    queries = [it.query for it in items]
    ctx_tokens = encode_texts(tokenizer, queries)
    wholes = encode_texts(tokenizer, [it.query + " " + c for it in items for c in it.choices])
    contexts, continuations = [], []
    k = 0
    for it, ctx in zip(items, ctx_tokens):
        for _ in it.choices:
            contexts.append(ctx)
            continuations.append(wholes[k][len(ctx):])
            k += 1
    return contexts, continuations


def evaluate_hellaswag(scorer: Scorer, tokenizer, special_ids: dict, items: list[ChoiceItem]) -> dict:
    """acc and acc_norm over ``items`` (decoders: log-likelihood; encoders: PLL of the ending), and under
    "per_item" each item's log-likelihoods and verdicts (for paired comparisons; the caller writes them apart)."""
    if not items:
        raise UserError("no HellaSwag items to evaluate")
    started = time.perf_counter()
    contexts, continuations = _encode_pairs(tokenizer, items)
    for i, cont in enumerate(continuations):
        if not cont:
            it = items[i // N_ENDINGS]
            raise UserError(f"HellaSwag item at line {it.line}: an ending tokenizes to nothing after its context")
    scorer.begin("HellaSwag", continuations)
    if scorer.kind == "decoder":
        if any(not c for c in contexts):
            raise UserError("a HellaSwag context tokenizes to nothing; every item needs a context")
        lls, truncated = scorer.causal(contexts, continuations)
        method = "causal log-likelihood of ' ' + ending given the context (no start token; lm-eval)"
    else:
        lls, truncated = scorer.pll(contexts, continuations, **encoder_specials(special_ids))
        method = "pseudo-log-likelihood of the ending's tokens, context unmasked"
    lls = lls.reshape(len(items), N_ENDINGS)
    chars = np.array([[len(c) for c in it.choices] for it in items], dtype=np.float64)
    gold = np.array([it.gold for it in items])
    acc = (lls.argmax(1) == gold)
    acc_norm = ((lls / chars).argmax(1) == gold)
    records = choice_records(items, lls, chars, [len(c) for c in continuations])
    seconds = time.perf_counter() - started
    return {
        "acc": float(acc.mean()), "acc_norm": float(acc_norm.mean()),
        "acc_stderr": float(acc.std(ddof=1) / np.sqrt(len(items))) if len(items) > 1 else None,
        "acc_norm_stderr": float(acc_norm.std(ddof=1) / np.sqrt(len(items))) if len(items) > 1 else None,
        "items": len(items),
        "scoring": {"method": method, "acc_norm": "log-likelihood / len(ending) in characters",
                    "truncated": truncated, "precision": scorer.precision},
        "seconds": round(seconds, 2),
        "per_item": records,  # RUN/eval/<name>.items.jsonl; not in <name>.json
    }
