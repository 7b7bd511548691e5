"""Classification tasks for fine-tuning: readers, class-balanced splits, and encoding for an encoder.

The committee paper fine-tunes on small, class-balanced subsets (AG News 1,000 per label, DBPedia 100
per label, FewRel 630/70 per relation over 10 or 16 relations) because on the full sets every model
is near 0.99 and the pretraining gap vanishes. So a task here is (texts, labels, label names), and
``balanced_split`` draws the same number of train and test items from every label, seeded; a label
with too few items is a user mistake naming how many there are, never a silently smaller class.

Formats: AG News and DBPedia CSV (no header, ``"class","title","text"``, class numbered from 1);
FewRel JSON (``fewrel.py``: entities marked); any CSV or TSV with a header (``labelled_table.py``: a label
column and the text columns, named when there is more than one).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tinylm.data.fewrel import read_fewrel
from tinylm.data.labelled_table import index_labels, read_labelled_table, table_rows
from tinylm.errors import UserError

AGNEWS_CLASSES = ("World", "Sports", "Business", "Sci/Tech")
DBPEDIA_CLASSES = ("Company", "EducationalInstitution", "Artist", "Athlete", "OfficeHolder", "MeanOfTransportation",
                   "Building", "NaturalPlace", "Village", "Animal", "Plant", "Album", "Film", "WrittenWork")
# (train, test) per label: the paper's sizes; the AG News test file has 1,900 per label, so 1,000 + 900.
DEFAULT_PER_LABEL = {"agnews": (1000, 900), "dbpedia": (100, 100), "fewrel": (630, 70), "csv": (100, 100)}
_TAG_SPLIT, _TAG_VALIDATION = 11, 13


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
def read_class_title_csv(path, name: str, class_names: tuple[str, ...]) -> ClassificationTask:
    """AG News / DBPedia: ``"class","title","text"`` rows, no header, classes numbered from 1."""
    path = Path(path)
    texts, labels = [], []
    for line, row in table_rows(path, tab_separated=False):
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
    return ClassificationTask(name, texts, np.asarray(labels, dtype=np.int64), list(class_names), str(path),
                              {"text_columns": ["title", "text"]})


def read_labelled_csv(path, label_column: str = "label", text_columns: list[str] | None = None) -> ClassificationTask:
    """Any CSV/TSV with a header: ``label_column`` is the class (any strings), ``text_columns`` the text."""
    texts, raw, info = read_labelled_table(path, label_column, text_columns)
    labels, names = index_labels(raw)
    return ClassificationTask(f"{info['format']}:{Path(path).name}", texts, labels, names, str(path), info)


def read_fewrel_task(path, n_labels: int | None = None, entity_markers: bool = True) -> ClassificationTask:
    name, texts, labels, names, info = read_fewrel(path, n_labels, entity_markers)
    return ClassificationTask(name, texts, labels, names, str(path), info)


def classification_dir(kind: str) -> Path:
    """Where ``agnews`` / ``fewrel`` without a path are read from: $TINYLM_CLASSIFICATION_DATA (a folder
    holding ``agnews/test.csv`` and ``fewrel/val_wiki.json``). No such data ships with tinylm (AG News is
    for research only), so without the variable a path must be given."""
    env = os.environ.get("TINYLM_CLASSIFICATION_DATA")
    if not env:
        raise UserError(f"no {kind} file is shipped with tinylm; give it as --task {kind}:PATH (or set "
                        "TINYLM_CLASSIFICATION_DATA to a folder holding agnews/test.csv and fewrel/val_wiki.json)")
    return Path(env).expanduser()


def load_task(spec: str, labels: int | None = None, label_column: str = "label",
              text_columns: list[str] | None = None, entity_markers: bool = True) -> ClassificationTask:
    """``agnews[:PATH]``, ``dbpedia:PATH``, ``fewrel[:PATH]`` (``labels`` relations, default all) or
    ``csv:PATH`` (a CSV or TSV with a header; ``tsv:PATH`` is the same)."""
    kind, _, path = str(spec).partition(":")
    kind = kind.strip().lower()
    if text_columns and kind not in ("csv", "tsv"):
        raise UserError(f"--text-column is for csv:PATH tasks; {kind} has its own fixed columns")
    if labels is not None and kind != "fewrel":
        raise UserError(f"--labels chooses FewRel relations; {kind} uses all of its labels")
    if kind == "agnews":
        return read_class_title_csv(path or classification_dir(kind) / "agnews" / "test.csv", "agnews", AGNEWS_CLASSES)
    if kind == "dbpedia":
        if not path:
            raise UserError("no DBPedia file is shipped; give its CSV as --task dbpedia:PATH")
        return read_class_title_csv(path, "dbpedia", DBPEDIA_CLASSES)
    if kind == "fewrel":
        return read_fewrel_task(path or classification_dir(kind) / "fewrel" / "val_wiki.json", labels, entity_markers)
    if kind in ("csv", "tsv") and path:
        return read_labelled_csv(path, label_column, text_columns)
    raise UserError(f"unknown task {spec!r}; use agnews, fewrel, dbpedia:PATH or csv:PATH")


def default_per_label(kind: str, counts) -> tuple[int, int]:
    """(train, test) per label when not asked: the paper's sizes where every label has enough items, else
    nine tenths / one tenth of the smallest label (FewRel 1.0's 700 a relation give the paper's 630/70)."""
    train, test = DEFAULT_PER_LABEL.get(kind, DEFAULT_PER_LABEL["csv"])
    smallest = int(min(counts))
    if smallest >= train + test:
        return train, test
    test = max(1, smallest // 10)
    return smallest - test, test


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
    for label in range(task.n_labels):
        order = _shuffled(task, np.flatnonzero(task.labels == label), seed, _TAG_SPLIT, label, need,
                          f"({train_per_label:,} train + {test_per_label:,} test per label)")
        test.append(order[:test_per_label])
        train.append(order[test_per_label:need])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def balanced_subset(task: ClassificationTask, items: np.ndarray, per_label: int, seed: int, tag: int) -> np.ndarray:
    """``per_label`` items of every label drawn from ``items`` (one file of a train/test pair), seeded."""
    if per_label < 1:
        raise UserError("train and test per label must be at least 1")
    return np.sort(np.concatenate([
        _shuffled(task, items[task.labels[items] == label], seed, tag, label, per_label, "")[:per_label]
        for label in np.unique(task.labels[items])]))


def carve_validation(task: ClassificationTask, train: np.ndarray, seed: int,
                     fraction: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """(fit, validation) from the train items: a tenth of every label (at least one), seeded, so that a
    choice made on validation (a learning rate) never sees the test half."""
    fit, val = [], []
    for label in np.unique(task.labels[train]):
        order = _shuffled(task, train[task.labels[train] == label], seed, _TAG_VALIDATION, label, 2,
                          "(one to fit and one to validate the learning rate on)")
        k = max(1, int(round(fraction * len(order))))
        val.append(order[:k])
        fit.append(order[k:])
    return np.sort(np.concatenate(fit)), np.sort(np.concatenate(val))


def _shuffled(task, items: np.ndarray, seed: int, tag: int, label: int, need: int, why: str) -> np.ndarray:
    if len(items) < need:
        raise UserError(f"label {task.label_names[label]!r} of {task.name} has {len(items):,} examples, fewer than the "
                        f"{need:,} asked {why}; ask for at most {len(items):,} per label with --train-per-label and "
                        "--test-per-label".replace(" asked ;", " asked;"))
    return items[np.random.default_rng([int(seed), tag, int(label)]).permutation(len(items))]


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
