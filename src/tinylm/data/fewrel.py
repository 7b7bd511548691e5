"""FewRel JSON (1.0's ``val_wiki.json``, 2.0's domain files ``val_pubmed``, ``val_semeval``, ``val_nyt``):
relation id -> instances with ``tokens`` and the head ``h`` and tail ``t`` entities' token positions.

The input marks the two entities, or a relation and its inverse (SemEval's ``(e1,e2)`` and ``(e2,e1)``)
are the same sentence with different labels. The markers are Zhou & Chen's (2022, "An Improved Baseline
for Sentence-level Relation Extraction") punctuation ones, ``@ head @`` and ``# tail #``: plain
characters every tokenizer already has, so a pretrained model needs no new embeddings. The committee
paper describes no marking; ``entity_markers=False`` gives its unmarked sentence.

The task is named after its file, and the number of relations defaults to all of the file's (FewRel
1.0's validation file has the paper's 16).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from tinylm.errors import UserError

HEAD_MARK, TAIL_MARK = "@", "#"


def marked_sentence(item: dict) -> str:
    """The tokens with ``@`` around every mention of the head and ``#`` around every mention of the tail."""
    tokens = list(item["tokens"])
    before = [[] for _ in tokens]
    after = [[] for _ in tokens]
    for key, mark in (("h", HEAD_MARK), ("t", TAIL_MARK)):
        for mention in item[key][2]:
            if mention:
                before[min(mention)].append(mark)
                after[max(mention)].insert(0, mark)
    return " ".join(" ".join([*b, tok, *a]) for b, tok, a in zip(before, tokens, after))


def read_fewrel(path, n_labels: int | None = None, entity_markers: bool = True):
    """(name, texts, labels, label names, info) of the first ``n_labels`` relations in file order (all when
    None); a name from ``pid2name.json`` beside the file is added to each relation id where it has one."""
    from tinylm.data.labelled_table import ENCODING

    path = Path(path)
    if not path.is_file():
        raise UserError(f"FewRel file {path} does not exist")
    try:
        data = json.loads(path.read_text(encoding=ENCODING))
        relations = list(data)
        if n_labels is not None and not 2 <= n_labels <= len(relations):
            raise UserError(f"{path} has {len(relations)} relations; set --labels to 2 .. {len(relations)} (or leave "
                            "it out for all of them)")
        relations = relations[:n_labels] if n_labels else relations
        texts, labels = [], []
        for i, rel in enumerate(relations):
            for item in data[rel]:
                texts.append(marked_sentence(item) if entity_markers else " ".join(item["tokens"]))
                labels.append(i)
    except (json.JSONDecodeError, KeyError, TypeError, AttributeError, IndexError, ValueError) as e:
        raise UserError(f"{path} is not FewRel JSON (relation -> [{{'tokens': [...], 'h': [name, id, [[i, ...]]], "
                        f"'t': ...}}, ...]): {type(e).__name__} {e}") from None
    if len(relations) < 2:
        raise UserError(f"{path} has {len(relations)} relation; a classification task needs at least 2")
    names = relations
    pid_file = path.parent / "pid2name.json"
    if pid_file.is_file():
        pid = json.loads(pid_file.read_text(encoding=ENCODING))
        names = [f"{r} ({pid[r][0]})" if r in pid else r for r in relations]
    name = f"fewrel {path.stem} ({len(relations)} relations)"
    info = {"relations": len(relations), "entity_markers": f"{HEAD_MARK} head {HEAD_MARK}, {TAIL_MARK} tail "
            f"{TAIL_MARK}" if entity_markers else None}
    return name, texts, np.asarray(labels, dtype=np.int64), names, info
