"""Classification readers, the balanced sampler, token statistics and token-controlled subsets."""

import json
import shutil

import numpy as np
import pytest

from tinylm.data.overlap import (avoiding_tokens, cap_paragraphs, paragraphs_within, random_paragraphs,
                                 store_token_counts, token_statistics)
from tinylm.data.store import TokenStore
from tinylm.data.tasks import (ClassificationTask, balanced_split, load_task, read_class_title_csv,
                               read_labelled_csv)
from tinylm.errors import UserError


def test_token_statistics_on_a_hand_made_example():
    # ids:            0  1  2  3  4  5
    pre = np.array([0, 5, 3, 0, 2, 0])  # pretraining has 1, 2, 4  -> T_W = 3
    task = np.array([0, 2, 0, 1, 1, 4])  # task uses 1, 3, 4, 5 -> T_C = 4; 3 and 5 missing -> T_M = 2
    s = token_statistics(pre, task, paragraphs=7)
    assert (s.W_S, s.T_W, s.T_C, s.T_M) == (7, 3, 4, 2)
    assert s.covered_mass == pytest.approx(3 / 8)  # occurrences of 1 (2) and 4 (1) out of 8
    # p_task = [0, .25, 0, .125, .125, .5], p_pre = [0, .5, .3, 0, .2, 0] -> min sum = .25 + .125
    assert s.histogram_intersection == pytest.approx(0.375)
    with pytest.raises(UserError, match="same tokenizer"):
        token_statistics(pre, task[:4], 1)


def _task(counts):
    labels = np.repeat(np.arange(len(counts)), counts)
    return ClassificationTask("toy", [f"t{i}" for i in range(len(labels))], labels, [f"L{i}" for i in range(len(counts))])


def test_balanced_split_is_balanced_disjoint_and_seeded():
    task = _task([10, 7, 12])
    train, test = balanced_split(task, 4, 3, seed=1)
    assert np.bincount(task.labels[train]).tolist() == [4, 4, 4]
    assert np.bincount(task.labels[test]).tolist() == [3, 3, 3]
    assert not set(train) & set(test)
    again = balanced_split(task, 4, 3, seed=1)
    assert all(np.array_equal(a, b) for a, b in zip((train, test), again))
    other = balanced_split(task, 4, 3, seed=2)
    assert not np.array_equal(train, other[0])
    # the test half does not depend on how many train items are asked for
    assert np.array_equal(balanced_split(task, 2, 3, seed=1)[1], test)
    with pytest.raises(UserError, match="'L1' of toy has 7 examples, fewer than the 8 asked"):
        balanced_split(task, 5, 3)


def test_agnews_and_fewrel_readers(tmp_path, make_agnews_csv, fixtures):
    rows = make_agnews_csv(tmp_path / "ag.csv", per_label=30)
    ag = load_task(f"agnews:{tmp_path / 'ag.csv'}")
    assert len(ag.texts) == 120 and ag.counts().tolist() == [30] * 4
    assert ag.label_names == ["World", "Sports", "Business", "Sci/Tech"]
    assert ag.labels.tolist() == [label - 1 for label, _, _ in rows]
    _, title, description = next(r for r in rows if "\\" in r[2])
    i = [r[2] for r in rows].index(description)
    assert ag.texts[i] == f"{title} {description.replace(chr(92), ' ')}"  # title and text joined, \\ a space
    fr = load_task(f"fewrel:{fixtures / 'fewrel/val_wiki.json'}", labels=3)  # 4 relations x 12 instances
    assert fr.name == "fewrel val_wiki (3 relations)" and fr.n_labels == 3 and fr.counts().tolist() == [12] * 3
    assert fr.label_names == ["P177 (crosses)", "P364 (original language of film or TV show)",
                              "P2094 (competition class)"]  # named from pid2name.json beside it
    assert fr.texts[0].startswith("In June 1987 , the Missouri") and fr.labels[12] == 1
    assert "Kaaviya Thalaivi @ ( தமிழ் :" in fr.texts[12]  # UTF-8 read as such
    assert load_task(f"fewrel:{fixtures / 'fewrel/val_wiki.json'}").n_labels == 4  # all of the file's by default
    with pytest.raises(UserError, match="has 4 relations; set --labels to 2 .. 4"):
        load_task(f"fewrel:{fixtures / 'fewrel/val_wiki.json'}", labels=16)


@pytest.mark.shared_data
def test_agnews_and_fewrel_readers_on_the_real_files(shared_data):
    ag = load_task(f"agnews:{shared_data / 'classification/agnews/test.csv'}")
    assert len(ag.texts) == 7600 and ag.counts().tolist() == [1900] * 4
    assert ag.label_names == ["World", "Sports", "Business", "Sci/Tech"]
    assert "Fears for T N pension" in ag.texts[0] and ag.labels[0] == 2
    fr = load_task(f"fewrel:{shared_data / 'classification/fewrel/val_wiki.json'}", labels=10)
    assert fr.n_labels == 10 and fr.counts().tolist() == [700] * 10 and "crosses" in fr.label_names[0]
    assert fr.texts[0].startswith("In June 1987 , the Missouri")


def test_agnews_and_fewrel_without_a_path(tmp_path, monkeypatch, make_agnews_csv, fixtures, one_line_error):
    """No classification data ships with tinylm: a bare `agnews` reads $TINYLM_CLASSIFICATION_DATA or names
    the fix, and never looks beside the repository."""
    monkeypatch.delenv("TINYLM_CLASSIFICATION_DATA", raising=False)
    monkeypatch.chdir(tmp_path)
    for kind in ("agnews", "fewrel"):
        with pytest.raises(UserError, match=f"give it as --task {kind}:PATH .*TINYLM_CLASSIFICATION_DATA"):
            load_task(kind)
    one_line_error(["finetune", "bert-1", "--scratch", "--task", "agnews"], "--task agnews:PATH")
    (tmp_path / "cls" / "agnews").mkdir(parents=True)
    make_agnews_csv(tmp_path / "cls" / "agnews" / "test.csv", per_label=3)
    shutil.copytree(fixtures / "fewrel", tmp_path / "cls" / "fewrel")
    monkeypatch.setenv("TINYLM_CLASSIFICATION_DATA", str(tmp_path / "cls"))
    assert load_task("agnews").counts().tolist() == [3] * 4
    assert load_task("fewrel", labels=2).counts().tolist() == [12] * 2
    assert load_task("agnews:" + str(tmp_path / "cls" / "agnews" / "test.csv")).source.endswith("test.csv")


def test_dbpedia_and_labelled_csv_readers(tmp_path):
    db = tmp_path / "dbpedia.csv"
    db.write_text('1,"Acme","Acme Corp, a company."\n14,"Moby","A novel, by Melville."\n9,"Zell","A village."\n')
    task = read_class_title_csv(db, "dbpedia", tuple(f"c{i}" for i in range(14)))
    assert task.labels.tolist() == [0, 13, 8] and task.texts[1] == "Moby A novel, by Melville."
    assert load_task(f"dbpedia:{db}").label_names[13] == "WrittenWork"
    csv = tmp_path / "t.csv"
    csv.write_text("text,label\nhello there,pos\nawful,neg\nfine,pos\n")
    t = read_labelled_csv(csv)
    assert t.label_names == ["neg", "pos"] and t.labels.tolist() == [1, 0, 1] and t.texts[1] == "awful"


@pytest.mark.parametrize("content, needles", [
    ("text,category\nhello,pos\n", ["no 'label' column", "text, category"]),
    ("text,label\nhello,pos\nbad,row,extra\n", ["line 3 has 3 columns but line 1 has 2"]),
])
def test_bad_task_csv_is_one_line(tmp_path, one_line_error, content, needles):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    one_line_error(["finetune", "bert-1", "--scratch", "--task", f"csv:{path}"], *needles)


def test_too_few_examples_per_label_is_one_line(tmp_path, one_line_error, make_agnews_csv):
    make_agnews_csv(tmp_path / "ag.csv", per_label=1900)
    one_line_error(["finetune", "bert-1", "--scratch", "--task", f"agnews:{tmp_path / 'ag.csv'}",
                    "--train-per-label", "1500", "--test-per-label", "1000"],
                   "label 'World' of agnews has 1,900 examples, fewer than the 2,500 asked", "at most 1,900 per label")


def test_dbpedia_row_without_class_is_one_line(tmp_path, one_line_error):
    path = tmp_path / "db.csv"
    path.write_text('"Acme","Acme Corp"\n')
    one_line_error(["finetune", "bert-1", "--scratch", "--task", f"dbpedia:{path}"], "is not a class number")


def test_paragraph_subsets(tiny_bert_store, tmp_path, one_line_error):
    store = TokenStore.open(tiny_bert_store)
    n = len(store.documents("train")) - 1
    a, b = random_paragraphs(store, 50, seed=3), random_paragraphs(store, 100, seed=3)
    assert len(a) == 50 and set(a) <= set(b)  # nested over the count
    counts = store_token_counts(store)
    common = counts > np.sort(counts)[-200]  # a small allowed set: the most common tokens
    docs = paragraphs_within(store, common)
    tokens, offsets = store.split("train"), store.documents("train")
    specials = set(store.special_ids.values())
    assert 0 < len(docs) < n
    for d in docs:
        assert all(common[t] or t in specials for t in tokens[offsets[d]:offsets[d + 1]])
    outside = np.setdiff1d(np.arange(n), docs)
    some = [d for d in outside[:20] if (offsets[d + 1] - offsets[d]) > 2]
    assert any(not common[t] for d in some for t in tokens[offsets[d]:offsets[d + 1]] if t not in specials)
    assert len(cap_paragraphs(docs, 5, seed=0)) == min(5, len(docs))
    task = np.zeros_like(counts)
    task[np.flatnonzero(counts)[:300]] = 1
    allowed = avoiding_tokens(counts, task, keep_common=10)
    assert not allowed[np.flatnonzero(task)[~np.isin(np.flatnonzero(task), np.argsort(-counts)[:10])]].any()
    one_line_error(["data", "paragraphs", str(tiny_bert_store), "--count", str(n + 1), "--out", str(tmp_path / "x")],
                   f"has {n:,}")


def test_data_cli_tokens_and_restrict(tiny_bert_store, tmp_path, capsys, agnews_csv):
    from tinylm.cli.main import main

    ag = f"agnews:{agnews_csv}"
    args = ["--task", ag, "--train-per-label", "20", "--test-per-label", "10"]
    assert main(["data", "tokens", str(tiny_bert_store), *args, "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["T_M"] > 0 and stats["T_C"] > stats["T_M"] and 0 < stats["covered_mass"] < 1
    assert main(["data", "paragraphs", str(tiny_bert_store), "--count", "100", "--out", str(tmp_path / "p")]) == 0
    assert TokenStore.open(tmp_path / "p").meta["splits"]["train"]["documents"] == 100
    assert main(["data", "restrict", str(tiny_bert_store), *args, "--avoid", "--keep-common", "300",
                 "--out", str(tmp_path / "avoid")]) == 0
    capsys.readouterr()
    assert main(["data", "tokens", str(tmp_path / "avoid"), *args, "--json"]) == 0
    avoid = json.loads(capsys.readouterr().out)
    assert avoid["T_M"] > stats["T_M"]  # the inverse construction raises T_M on purpose
