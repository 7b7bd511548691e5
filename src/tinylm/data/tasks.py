"""Classification tasks for fine-tuning: readers, class-balanced splits, and encoding for an encoder.

The committee paper fine-tunes on small, class-balanced subsets (AG News 1,000 per label, DBPedia 100
per label, FewRel 630/70 per relation over 10 or 16 relations) because on the full sets every model
is near 0.99 and the pretraining gap vanishes. So a task here is (texts, labels, label names), and
``balanced_split`` draws the same number of train and test items from every label, seeded; a label
with too few items is a user mistake naming how many there are, never a silently smaller class.

Formats: AG News and DBPedia CSV (no header, ``"class","title","text"``, class numbered from 1);
FewRel JSON (relation id -> instances with ``tokens``); any CSV with a header and a ``label`` column
(``csv:PATH``; the other columns, joined, are the text).
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tinylm.errors import UserError

AGNEWS_CLASSES = ("World", "Sports", "Business", "Sci/Tech")
DBPEDIA_CLASSES = ("Company", "EducationalInstitution", "Artist", "Athlete", "OfficeHolder", "MeanOfTransportation",
                   "Building", "NaturalPlace", "Village", "Animal", "Plant", "Album", "Film", "WrittenWork")
# (train, test) per label: the paper's sizes; the AG News test file has 1,900 per label, so 1,000 + 900.
DEFAULT_PER_LABEL = {"agnews": (1000, 900), "dbpedia": (100, 100), "fewrel": (630, 70), "csv": (100, 100)}
_TAG_SPLIT = 11


@dataclass
class ClassificationTask:
    name: str
    texts: list[str]
    labels: np.ndarray  # int64, 0 .. n_labels - 1
    label_names: list[str]
    source: str = ""
    info: dict = field(default_factory=dict)

    @property
    def n_labels(self) -> int:
        return len(self.label_names)

    def counts(self) -> np.ndarray:
        return np.bincount(self.labels, minlength=self.n_labels)


# ------------------------------------------------------------------ readers
def _csv_rows(path: Path):
    """Rows of a CSV file; a row with another number of columns than the first is a UserError."""
    if not path.is_file():
        raise UserError(f"task file {path} does not exist")
    with open(path, newline="", encoding="utf-8") as f:
        width = None
        try:
            for line, row in enumerate(csv.reader(f), start=1):
                if not row:
                    continue
                if width is None:
                    width = len(row)
                elif len(row) != width:
                    raise UserError(f"{path} line {line} has {len(row)} columns but line 1 has {width}: every row "
                                    "of a task CSV needs the same columns (quote fields that hold commas)")
                yield line, row
        except csv.Error as e:
            raise UserError(f"{path} is not readable CSV ({e})") from None


def read_class_title_csv(path, name: str, class_names: tuple[str, ...]) -> ClassificationTask:
    """AG News / DBPedia: ``"class","title","text"`` rows, no header, classes numbered from 1."""
    path = Path(path)
    texts, labels = [], []
    for line, row in _csv_rows(path):
        head = row[0].strip()
        if not head.isdigit() or not 1 <= int(head) <= len(class_names):
            raise UserError(f"{path} line {line}: first column {head[:30]!r} is not a class number 1-"
                            f"{len(class_names)}; {name} rows are \"class\",\"title\",\"text\" (no header)")
        if len(row) < 2:
            raise UserError(f"{path} line {line} has a class but no text column")
        labels.append(int(head) - 1)
        texts.append(" ".join(part.replace("\\", " ").strip() for part in row[1:]))
    if not texts:
        raise UserError(f"{path} holds no rows")
    return ClassificationTask(name, texts, np.asarray(labels, dtype=np.int64), list(class_names), str(path))


def read_labelled_csv(path, label_column: str = "label") -> ClassificationTask:
    """Any CSV with a header: ``label_column`` is the class (any strings), the other columns the text."""
    path = Path(path)
    rows = _csv_rows(path)
    try:
        _, header = next(rows)
    except StopIteration:
        raise UserError(f"{path} is empty") from None
    header = [h.strip() for h in header]
    if label_column not in header:
        raise UserError(f"{path} has no {label_column!r} column (its header: {', '.join(header)}); add one or "
                        "name the label column with --label-column")
    at = header.index(label_column)
    raw_labels, texts = [], []
    for _, row in rows:
        raw_labels.append(row[at].strip())
        texts.append(" ".join(v.strip() for i, v in enumerate(row) if i != at))
    if not texts:
        raise UserError(f"{path} has a header but no rows")
    names = sorted(set(raw_labels))
    index = {n: i for i, n in enumerate(names)}
    return ClassificationTask(f"csv:{path.name}", texts, np.asarray([index[v] for v in raw_labels], dtype=np.int64),
                              names, str(path))


def read_fewrel(path, n_labels: int | None = None) -> ClassificationTask:
    """FewRel 1.0 JSON; the first ``n_labels`` relations in file order (all when None). The sentence
    is the text (entity positions are not marked, as the paper describes no marking)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"FewRel file {path} does not exist")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        relations = list(data)
        if n_labels is not None:
            if not 2 <= n_labels <= len(relations):
                raise UserError(f"{path} has {len(relations)} relations; ask for 2 to {len(relations)} labels")
            relations = relations[:n_labels]
        texts, labels = [], []
        for i, rel in enumerate(relations):
            for item in data[rel]:
                texts.append(" ".join(item["tokens"]))
                labels.append(i)
    except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as e:
        raise UserError(f"{path} is not FewRel JSON (relation -> [{{'tokens': [...]}}, ...]): {e}") from None
    names = relations
    pid_file = path.parent / "pid2name.json"
    if pid_file.is_file():
        pid = json.loads(pid_file.read_text(encoding="utf-8"))
        names = [f"{r} ({pid[r][0]})" if r in pid else r for r in relations]
    return ClassificationTask(f"fewrel{len(relations)}", texts, np.asarray(labels, dtype=np.int64), names, str(path))


def classification_dir(kind: str) -> Path:
    """Where ``agnews`` / ``fewrel`` without a path are read from: $TINYLM_CLASSIFICATION_DATA (a folder
    holding ``agnews/test.csv`` and ``fewrel/val_wiki.json``). No such data ships with tinylm (AG News is
    for research only), so without the variable a path must be given."""
    env = os.environ.get("TINYLM_CLASSIFICATION_DATA")
    if not env:
        raise UserError(f"no {kind} file is shipped with tinylm; give it as --task {kind}:PATH (or set "
                        "TINYLM_CLASSIFICATION_DATA to a folder holding agnews/test.csv and fewrel/val_wiki.json)")
    return Path(env).expanduser()


def load_task(spec: str, labels: int | None = None, label_column: str = "label") -> ClassificationTask:
    """``agnews[:PATH]``, ``dbpedia:PATH``, ``fewrel[:PATH]`` (``labels`` relations, default 16) or ``csv:PATH``."""
    kind, _, path = str(spec).partition(":")
    kind = kind.strip().lower()
    if kind == "agnews":
        return read_class_title_csv(path or classification_dir(kind) / "agnews" / "test.csv", "agnews", AGNEWS_CLASSES)
    if kind == "dbpedia":
        if not path:
            raise UserError("no DBPedia file is shipped; give its CSV as --task dbpedia:PATH")
        return read_class_title_csv(path, "dbpedia", DBPEDIA_CLASSES)
    if kind == "fewrel":
        return read_fewrel(path or classification_dir(kind) / "fewrel" / "val_wiki.json", labels or 16)
    if kind == "csv" and path:
        return read_labelled_csv(path, label_column)
    raise UserError(f"unknown task {spec!r}; use agnews, fewrel, dbpedia:PATH or csv:PATH")


# ------------------------------------------------------------------ balanced splits
def balanced_split(task: ClassificationTask, train_per_label: int, test_per_label: int,
                   seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(train indices, test indices) with exactly that many items of every label, disjoint, seeded.

    Each label's items get their own seeded permutation, so the split of one label does not depend
    on how many items another label has; the test items are the same for every ``train_per_label``
    that fits, only the seed changes them.
    """
    if train_per_label < 1 or test_per_label < 1:
        raise UserError("train and test per label must be at least 1")
    need = train_per_label + test_per_label
    train, test = [], []
    for label, count in enumerate(task.counts()):
        if count < need:
            raise UserError(f"label {task.label_names[label]!r} of {task.name} has {count:,} examples, fewer than the "
                            f"{need:,} asked ({train_per_label:,} train + {test_per_label:,} test per label); ask "
                            f"for at most {count:,} per label")
        items = np.flatnonzero(task.labels == label)
        order = items[np.random.default_rng([int(seed), _TAG_SPLIT, label]).permutation(len(items))]
        test.append(order[:test_per_label])
        train.append(order[test_per_label:need])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def encode_texts(tokenizer, texts: list[str], max_len: int, cls_id: int | None, sep_id: int | None,
                 pad_id: int = 0):
    """``[CLS] text [SEP]`` truncated to ``max_len`` and padded: (input_ids, attention_mask) LongTensors."""
    import torch

    budget = max_len - (cls_id is not None) - (sep_id is not None)
    ids = np.full((len(texts), max_len), pad_id, dtype=np.int64)
    mask = np.zeros((len(texts), max_len), dtype=np.int64)
    for i, enc in enumerate(tokenizer.encode_batch(list(texts), add_special_tokens=False)):
        row = ([cls_id] if cls_id is not None else []) + enc.ids[:budget] + ([sep_id] if sep_id is not None else [])
        ids[i, : len(row)] = row
        mask[i, : len(row)] = 1
    return torch.from_numpy(ids), torch.from_numpy(mask)
