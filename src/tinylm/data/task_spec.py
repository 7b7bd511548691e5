"""Which task and which split, and the task's description: what a fine-tuned model was trained and
tested on, saved beside it so that a committee scores every member on exactly that.

A ``TaskSpec`` is what the user asked (a file or a train/test pair, its columns, the per-label sizes,
the split seed); ``load_split`` reads it once and draws the split; ``describe_task`` writes down the result:
resolved paths, each file's SHA-256, the columns, the labels and how many items of each went to train
and test. Two descriptions name the same task when they agree on everything but the paths (``identity``):
a file is the same file by its content, whether reached by an absolute or a relative path, and another
file with the same name is another task.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import numpy as np

from tinylm.data.tasks import ClassificationTask, balanced_split, balanced_subset, default_per_label, load_task
from tinylm.errors import UserError

_TAG_TRAIN_FILE, _TAG_TEST_FILE = 17, 19


@dataclass
class TaskSpec:
    """What the user asked: everything every member of a committee must share."""

    task: str  # agnews[:PATH], fewrel[:PATH], dbpedia:PATH, csv:PATH; only the kind with train_file/test_file
    labels: int | None = None  # FewRel: how many relations (None: all of the file's)
    train_per_label: int | None = None  # None: from the file (default_per_label); with a train file: all of it
    test_per_label: int | None = None
    split_seed: int = 0
    label_column: str = "label"
    text_columns: list[str] | None = None  # None: the one column beside the label
    train_file: str | None = None  # a task's own train/test files instead of one file split in two
    test_file: str | None = None
    entity_markers: bool = True  # FewRel: @ head @, # tail #

    @property
    def kind(self) -> str:
        return self.task.split(":", 1)[0].strip().lower()

    def key(self) -> dict:
        return asdict(self)


@dataclass
class TaskSplit:
    spec: TaskSpec  # with the per-label sizes that were used
    task: ClassificationTask
    train: np.ndarray  # item indices
    test: np.ndarray
    files: dict  # role ("data", or "train" and "test") -> path


def _read(spec: TaskSpec, task: str) -> ClassificationTask:
    return load_task(task, spec.labels, spec.label_column, spec.text_columns, spec.entity_markers)


def load_split(spec: TaskSpec) -> TaskSplit:
    """Read the task and draw its split: one file split in two (balanced, seeded) or a train/test pair."""
    if (spec.train_file is None) != (spec.test_file is None):
        raise UserError("give both --train FILE and --test FILE (a task's own split), or neither")
    if spec.train_file is not None:
        return _load_pair(spec)
    task = _read(spec, spec.task)
    sizes = default_per_label(spec.kind, task.counts())
    spec = replace(spec, train_per_label=spec.train_per_label or sizes[0],
                   test_per_label=spec.test_per_label or sizes[1])
    train, test = balanced_split(task, spec.train_per_label, spec.test_per_label, spec.split_seed)
    return TaskSplit(spec, task, train, test, {"data": task.source})


def _load_pair(spec: TaskSpec) -> TaskSplit:
    kind, _, path = spec.task.partition(":")
    if path:
        raise UserError(f"--task {spec.task} names a file and --train/--test name two more: give the task's kind "
                        f"alone (--task {kind}) with --train and --test, or one file as --task {kind}:PATH")
    train_part, test_part = _read(spec, f"{kind}:{spec.train_file}"), _read(spec, f"{kind}:{spec.test_file}")
    index = {name: i for i, name in enumerate(train_part.label_names)}
    unseen = [n for n in test_part.label_names if n not in index]
    if unseen:
        raise UserError(f"label {unseen[0]!r} of the test file {spec.test_file} never occurs in the train file "
                        f"{spec.train_file}: a classifier cannot learn it; give files with the same labels")
    test_labels = np.asarray([index[test_part.label_names[i]] for i in test_part.labels], dtype=np.int64)
    task = ClassificationTask(train_part.name, train_part.texts + test_part.texts,
                              np.concatenate([train_part.labels, test_labels]), train_part.label_names,
                              train_part.source, train_part.info)
    train = np.arange(len(train_part.texts))
    test = np.arange(len(train_part.texts), len(task.texts))
    if spec.train_per_label:
        train = balanced_subset(task, train, spec.train_per_label, spec.split_seed, _TAG_TRAIN_FILE)
    if spec.test_per_label:
        test = balanced_subset(task, test, spec.test_per_label, spec.split_seed, _TAG_TEST_FILE)
    return TaskSplit(spec, task, train, test, {"train": spec.train_file, "test": spec.test_file})


def file_sha256(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def describe_task(split: TaskSplit) -> dict:
    """The task as fine-tuned: the spec with resolved paths, file hashes, columns, labels and counts."""
    files = {role: {"path": str(Path(p).expanduser().resolve()), "sha256": file_sha256(p)}
             for role, p in split.files.items()}
    spec = split.spec.key()
    if "data" in files:
        spec["task"] = f"{split.spec.kind}:{files['data']['path']}"
    else:
        spec.update(train_file=files["train"]["path"], test_file=files["test"]["path"])
    names = split.task.label_names

    def per_label(items):
        return {n: int(c) for n, c in zip(names, np.bincount(split.task.labels[items], minlength=len(names)))}

    return {"name": split.task.name, "spec": spec, "files": files, "columns": split.task.info,
            "label_names": names, "per_label": {"train": per_label(split.train), "test": per_label(split.test)}}


def identity(description: dict) -> dict:
    """A description without its paths: two that are equal here read the same bytes the same way."""
    spec = {k: v for k, v in description["spec"].items() if k not in ("task", "train_file", "test_file")}
    spec["kind"] = description["spec"]["task"].split(":", 1)[0]
    files = {role: f["sha256"] for role, f in description["files"].items()}
    return {**{k: v for k, v in description.items() if k not in ("spec", "files", "name")}, "spec": spec,
            "files": files}


def spec_from_description(description: dict, task: str | None = None, train_file: str | None = None,
                          test_file: str | None = None) -> TaskSpec:
    """The spec a description was made from; files given here replace its paths (the same content, moved)."""
    known = {f.name for f in fields(TaskSpec)}
    spec = TaskSpec(**{k: v for k, v in description["spec"].items() if k in known})
    if task and ":" in task:
        spec = replace(spec, task=task)
    return replace(spec, train_file=train_file or spec.train_file, test_file=test_file or spec.test_file)


def mismatch(expected: dict, found: dict) -> str | None:
    """Why ``found`` is not the task ``expected`` describes (None when it is), in a few words."""
    a, b = identity(expected), identity(found)
    if a == b:
        return None
    for role, sha in a["files"].items():
        if b["files"].get(role) != sha:
            got = found["files"].get(role, {})
            return (f"{got.get('path', '?')} (sha256 {str(got.get('sha256'))[:12]}) is not the file "
                    f"{expected['files'][role]['path']} (sha256 {sha[:12]})")
    for key in ("spec", "columns", "label_names", "per_label"):
        if a.get(key) != b.get(key):
            return f"its {key.replace('_', ' ')} differ ({b.get(key)} against {a.get(key)})"
    return "the descriptions differ"
