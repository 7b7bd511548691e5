"""A labelled file a researcher brings is read as they mean it, or refused in one line (issue 19):
the text columns said out loud, a byte-order mark, TSV, a task's own train/test files, FewRel 2.0
domain files (named, entities marked, defaults from the file), and a description that knows a file by
its content."""

import hashlib
import json
import random
import shutil

import numpy as np
import pytest

from tinylm.data.task_spec import TaskSpec, describe_task, identity, load_split, mismatch
from tinylm.data.tasks import carve_validation, load_task
from tinylm.errors import UserError


def write_csv(path, header, rows, sep=",", bom=False):
    text = sep.join(header) + "\n" + "".join(sep.join(map(str, r)) + "\n" for r in rows)
    path.write_text(("\ufeff" if bom else "") + text, encoding="utf-8")
    return path


def label_leaking_rows(n=40, seed=0):
    """label, gold (= the label) and random text: the label is readable only from the wrong column."""
    rng = random.Random(seed)
    words = "alpha beta gamma delta epsilon zeta eta theta iota kappa".split()
    return [(lab, lab, " ".join(rng.choice(words) for _ in range(6))) for lab in ("neg", "pos") for _ in range(n)]


def test_several_text_columns_need_text_column(tmp_path, one_line_error):
    path = write_csv(tmp_path / "t.csv", ["label", "gold", "text"], label_leaking_rows())
    with pytest.raises(UserError, match=r"2 columns beside the label 'label' \(gold, text\): say which is the text "
                                        r"with --text-column"):
        load_task(f"csv:{path}")
    one_line_error(["finetune", "bert-1", "--scratch", "--task", f"csv:{path}"], "(gold, text)", "--text-column")
    task = load_task(f"csv:{path}", text_columns=["text"])
    assert not any(t.startswith(("neg", "pos")) or " neg" in t or " pos" in t for t in task.texts)  # no label inside
    assert task.info["text_columns"] == ["text"] and task.info["label_column"] == "label"
    joined = load_task(f"csv:{path}", label_column="gold", text_columns=["text", "label"])
    assert joined.texts[0].endswith(" neg")  # asked for, in the order asked
    with pytest.raises(UserError, match="--text-column 'gold' is the label column"):
        load_task(f"csv:{path}", label_column="gold", text_columns=["gold"])
    with pytest.raises(UserError, match="has no column 'body'.*label, gold, text"):
        load_task(f"csv:{path}", text_columns=["body"])
    with pytest.raises(UserError, match="--text-column is for csv:PATH tasks"):
        load_task(f"agnews:{path}", text_columns=["text"])


def test_byte_order_mark_and_tsv(tmp_path):
    bom = write_csv(tmp_path / "excel.csv", ["label", "text"], [("a", "one"), ("b", "two")], bom=True)
    task = load_task(f"csv:{bom}")
    assert task.label_names == ["a", "b"] and task.texts == ["one", "two"]
    tsv = write_csv(tmp_path / "sst2.tsv", ["sentence", "label"],
                    [('it \'s a "charming" , often affecting journey', 1), ("unflinchingly bleak", 0)], sep="\t")
    task = load_task(f"csv:{tsv}")
    assert task.texts[0] == 'it \'s a "charming" , often affecting journey' and task.labels.tolist() == [1, 0]
    assert task.info["format"] == "tsv"
    sniffed = write_csv(tmp_path / "trec.txt", ["label", "text"], [("DESC", "how did serfdom develop ?")], sep="\t")
    assert load_task(f"csv:{sniffed}").texts == ["how did serfdom develop ?"]  # tabs and no commas in the header


def test_train_and_test_files(tmp_path, one_line_error):
    train = write_csv(tmp_path / "train.csv", ["label", "text"], [("x", f"x{i}") for i in range(6)] +
                      [("y", f"y{i}") for i in range(3)])
    test = write_csv(tmp_path / "test.csv", ["label", "text"], [("y", "y"), ("y", "yy"), ("x", "x")])
    split = load_split(TaskSpec("csv", train_file=str(train), test_file=str(test)))
    assert len(split.train) == 9 and len(split.test) == 3  # the files as given, unbalanced
    assert [split.task.texts[i] for i in split.test] == ["y", "yy", "x"]
    assert split.task.labels[split.test].tolist() == [1, 1, 0]  # test labels indexed as the train file's
    d = describe_task(split)
    assert d["per_label"] == {"train": {"x": 6, "y": 3}, "test": {"x": 1, "y": 2}}
    assert set(d["files"]) == {"train", "test"}
    balanced = load_split(TaskSpec("csv", train_per_label=3, test_per_label=1, train_file=str(train),
                                   test_file=str(test)))
    assert np.bincount(balanced.task.labels[balanced.train]).tolist() == [3, 3]
    unseen = write_csv(tmp_path / "unseen.csv", ["label", "text"], [("z", "z")])
    with pytest.raises(UserError, match="label 'z' of the test file .* never occurs in the train file"):
        load_split(TaskSpec("csv", train_file=str(train), test_file=str(unseen)))
    one_line_error(["finetune", "bert-1", "--scratch", "--train", str(train)], "give both --train FILE and --test")
    one_line_error(["finetune", "bert-1", "--scratch", "--task", f"csv:{train}", "--train", str(train), "--test",
                    str(test)], "give the task's kind alone (--task csv)")


def test_fewrel_domain_file_named_marked_and_sized_from_the_file(tmp_path, fixtures, one_line_error):
    data = json.loads((fixtures / "fewrel/val_wiki.json").read_text(encoding="utf-8"))
    nyt = {rel: items[:5] for rel, items in list(data.items())[:3]}  # a FewRel 2.0-like file: 3 x 5, no pid2name
    a = dict(nyt[next(iter(nyt))][0])
    nyt[next(iter(nyt))][1] = {**a, "h": a["t"], "t": a["h"]}  # (e2,e1): the same sentence, entities swapped
    path = tmp_path / "val_nyt.json"
    path.write_text(json.dumps(nyt), encoding="utf-8")
    task = load_task(f"fewrel:{path}")
    assert task.name == "fewrel val_nyt (3 relations)" and task.n_labels == 3
    assert task.texts[0] != task.texts[1]  # head and tail told apart
    assert "@ Cape Girardeau Bridge @" in task.texts[0] and "# Mississippi River #" in task.texts[0]
    assert "# Cape Girardeau Bridge #" in task.texts[1]
    assert "@" not in load_task(f"fewrel:{path}", entity_markers=False).texts[0]
    split = load_split(TaskSpec(f"fewrel:{path}"))
    assert (split.spec.train_per_label, split.spec.test_per_label) == (4, 1)  # 9/10 and 1/10 of the file's 5
    one_line_error(["finetune", "bert-1", "--scratch", "--task", f"fewrel:{path}", "--labels", "16"],
                   "has 3 relations; set --labels to 2 .. 3")
    one_line_error(["finetune", "bert-1", "--scratch", "--task", f"fewrel:{path}", "--train-per-label", "5"],
                   "has 5 examples", "--train-per-label")


def test_description_knows_a_file_by_its_content(tmp_path, monkeypatch):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    rows = [(lab, f"{lab} text {i}") for lab in "xyz" for i in range(4)]
    first = write_csv(tmp_path / "a" / "task.csv", ["label", "text"], rows)
    other = write_csv(tmp_path / "b" / "task.csv", ["label", "text"], rows[:-1] + [("z", "changed")])
    spec = TaskSpec(f"csv:{first}", train_per_label=2, test_per_label=1)
    d = describe_task(load_split(spec))
    sha = hashlib.sha256(first.read_bytes()).hexdigest()
    assert d["files"]["data"] == {"path": str(first.resolve()), "sha256": sha}
    assert d["spec"]["text_columns"] is None and d["columns"]["text_columns"] == ["text"]
    monkeypatch.chdir(tmp_path)
    relative = describe_task(load_split(TaskSpec("csv:a/task.csv", train_per_label=2, test_per_label=1)))
    assert identity(relative) == identity(d) and mismatch(d, relative) is None
    moved = shutil.copy(first, tmp_path / "moved.csv")
    assert mismatch(d, describe_task(load_split(TaskSpec(f"csv:{moved}", train_per_label=2, test_per_label=1)))) is None
    why = mismatch(d, describe_task(load_split(TaskSpec("csv:b/task.csv", train_per_label=2, test_per_label=1))))
    assert why and "is not the file" in why and str(other.resolve()) in why
    reseeded = describe_task(load_split(TaskSpec("csv:a/task.csv", train_per_label=2, test_per_label=1, split_seed=1)))
    assert "spec" in mismatch(d, reseeded)


def test_validation_is_carved_from_train_per_label():
    from tinylm.data.tasks import ClassificationTask

    labels = np.repeat([0, 1, 2], [20, 30, 12])
    task = ClassificationTask("t", [str(i) for i in range(len(labels))], labels, ["a", "b", "c"])
    train = np.flatnonzero(np.arange(len(labels)) % 3 != 0)
    fit, val = carve_validation(task, train, seed=0)
    assert not set(fit) & set(val) and set(fit) | set(val) == set(train)
    assert np.bincount(labels[val]).tolist() == [1, 2, 1]  # a tenth of each label, at least one
    assert np.array_equal(carve_validation(task, train, seed=0)[1], val)
    with pytest.raises(UserError, match="one to fit and one to validate"):
        carve_validation(task, np.array([0, 20, 21]), seed=0)
