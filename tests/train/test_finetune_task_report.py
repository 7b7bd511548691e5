"""`tinylm finetune` and `tinylm committee` on a labelled file a researcher brings (issue 19): the text
column said, the task's description saved and checked by content, the report's baseline, per-class
accuracy, confusion matrix and learning rate chosen per arm, progress lines, a spec from scratch."""

import hashlib
import json
import random

import pytest


@pytest.fixture(scope="module")
def encoder(pretrain_tiny_encoder, tmp_path_factory):
    """A 1-block encoder pretrained for 4 steps: weights to fine-tune, not a good model."""
    return pretrain_tiny_encoder(tmp_path_factory.mktemp("runs") / "mlm", name="bert-tiny-task", model="L1-2-32x2",
                                 steps=4, log_every=2, windows=4)


def leaking_csv(path, n=30, seed=0):
    """`lab,gold,text`: gold is the label, text is random words, so the label is only in the wrong column."""
    rng = random.Random(seed)
    words = "alpha beta gamma delta epsilon zeta eta theta iota kappa".split()
    rows = [(lab, lab, " ".join(rng.choice(words) for _ in range(8))) for lab in ("neg", "pos", "neu")
            for _ in range(n)]
    rng.shuffle(rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("lab,gold,text\n" + "".join(",".join(r) + "\n" for r in rows), encoding="utf-8")
    return path


def finetune_json(main, capsys, argv):
    assert main(argv) == 0
    captured = capsys.readouterr()
    return json.loads(captured.out), captured.err


def test_committee_reads_the_task_as_fine_tuned_and_knows_the_file_by_content(encoder, tmp_path, monkeypatch,
                                                                             capsys, one_line_error):
    from tinylm.cli.main import main

    task = leaking_csv(tmp_path / "a" / "task.csv")
    ft = ["--task", f"csv:{task}", "--label-column", "lab", "--text-column", "text", "--train-per-label", "20",
          "--test-per-label", "10", "--seeds", "2", "--max-steps", "4", "--lr", "1e-3", "--gap", "--quiet"]
    report, _ = finetune_json(main, capsys, ["finetune", str(encoder), *ft, "--out", str(tmp_path / "ft"), "--json"])
    desc = report["task"]
    assert desc["files"]["data"]["sha256"] == hashlib.sha256(task.read_bytes()).hexdigest()
    assert desc["columns"]["label_column"] == "lab" and desc["columns"]["text_columns"] == ["text"]
    assert desc["per_label"]["test"] == {"neg": 10, "neu": 10, "pos": 10}
    assert json.loads((tmp_path / "ft" / "finetune.json").read_text())["task"] == desc
    members = [str(tmp_path / "ft" / arm / f"seed-{s}") for arm, s in (("pretrained", 0), ("pretrained", 1), ("scratch", 0))]
    own = [r["accuracy"] for r in report["pretrained"]["runs"]] + [report["scratch"]["runs"][0]["accuracy"]]

    def committee(*extra):
        com, _ = finetune_json(main, capsys, ["committee", *members, "--repeats", "1", "--json", *extra])
        return [m["accuracy"] for m in com["members"]]

    assert committee() == own  # the file, columns and split of finetune.json: each member's own accuracy
    monkeypatch.chdir(tmp_path)
    assert committee("--task", "csv:a/task.csv") == own  # the same file by a relative path
    leaking_csv(tmp_path / "b" / "task.csv", seed=1)
    one_line_error(["committee", *members, "--task", "csv:b/task.csv"], "b/task.csv is not the file",
                   "its content differs")
    (tmp_path / "a" / "task.csv").rename(tmp_path / "moved.csv")
    one_line_error(["committee", *members], "is not there; say where it is now with --task csv:PATH")
    assert committee("--task", f"csv:{tmp_path / 'moved.csv'}") == own


def test_label_in_another_column_is_refused_or_read_out(encoder, tmp_path, capsys, one_line_error):
    """The issue's check: a column equal to the label beside random text. Without --text-column the file is
    refused; with it the model reads only random words and stays near chance (1/3 here)."""
    from tinylm.cli.main import main

    task = leaking_csv(tmp_path / "task.csv", n=40)
    args = ["finetune", str(encoder), "--task", f"csv:{task}", "--label-column", "lab", "--train-per-label", "30",
            "--test-per-label", "10", "--seeds", "1", "--max-steps", "30", "--lr", "3e-3", "--quiet", "--json"]
    one_line_error(args, "2 columns beside the label 'lab' (gold, text)", "--text-column")
    assert not (tmp_path / "out").exists()
    report, _ = finetune_json(main, capsys, [*args, "--text-column", "text"])
    assert report["pretrained"]["mean"] < 0.6  # the label column in the text would give ~1.0


def test_report_has_baseline_per_class_confusion_and_lr_per_arm(encoder, tmp_path, capsys, agnews_csv):
    from tinylm.cli.main import main

    out = tmp_path / "ft"
    report, err = finetune_json(main, capsys, [
        "finetune", str(encoder), "--task", f"agnews:{agnews_csv}", "--train-per-label", "10", "--test-per-label",
        "5", "--seeds", "2", "--max-steps", "2", "--gap", "--lr-grid", "1e-3,1e-2", "--out", str(out), "--json"])
    assert report == json.loads((out / "finetune.json").read_text())
    assert report["baseline"] == {"label": "World", "accuracy": 0.25, "chance": 0.25}
    for arm in ("pretrained", "scratch"):
        choice = report["lr_grid"][arm]
        scores = choice["validation_accuracy"]
        assert set(scores) == {"0.001", "0.01"} and choice["chosen"] in (1e-3, 1e-2)
        assert scores[f"{choice['chosen']:g}"] == max(scores.values())  # the best on validation (the smaller on a tie)
        assert choice["chosen"] == 1e-3 or scores["0.01"] > scores["0.001"]
        assert choice["validation_items"] == 4 and choice["fit_items"] == 36  # a tenth of the 10 per label
        assert report[arm]["lr"] == choice["chosen"] and all(r["lr"] == choice["chosen"] for r in report[arm]["runs"])
        run = report[arm]["runs"][0]
        assert sum(map(sum, run["confusion"])) == 20 and [sum(row) for row in run["confusion"]] == [5] * 4
        diagonal = sum(run["confusion"][i][i] for i in range(4))
        assert diagonal / 20 == pytest.approx(run["accuracy"])
        assert set(run["per_class_accuracy"]) == {"World", "Sports", "Business", "Sci/Tech"}
        assert sum(map(sum, report[arm]["confusion"])) == 40  # summed over the 2 seeds
    saved = json.loads((out / "scratch" / "seed-1" / "finetune.json").read_text())
    assert saved["task"]["files"]["data"]["sha256"] == hashlib.sha256(agnews_csv.read_bytes()).hexdigest()
    # progress on stderr: the validation tries, each seed's steps and its result
    assert "pretrained lr 0.01 (validation): step 2/2" in err and "scratch: chose lr" in err
    assert "scratch seed 1: accuracy" in err and "majority-class baseline 0.2500" in err


def test_scratch_from_a_spec_takes_a_flavour(agnews_csv, capsys, one_line_error):
    from tinylm.cli.main import main

    args = ["finetune", "L1-2-32x2", "--scratch", "--task", f"agnews:{agnews_csv}", "--train-per-label", "4",
            "--test-per-label", "2", "--seeds", "1", "--max-steps", "1", "--quiet"]
    assert main([*args, "--json"]) == 0  # a spec is an encoder here (flavour bert) unless told otherwise
    assert json.loads(capsys.readouterr().out)["scratch"]["n"] == 1
    loud = [a for a in args if a != "--quiet"]  # refused before the first progress line
    one_line_error([*loud, "--flavour", "llama"], "needs an encoder, got a llama decoder", "--flavour bert")
    one_line_error([*loud, "--lr-grid", "1e-3"], "--lr-grid needs at least two learning rates")
    one_line_error([*loud, "--train-per-label", "1", "--lr-grid", "1e-3,1e-2"],
                   "has 1 examples, fewer than the 2 asked (one to fit and one to validate")


def test_committee_on_a_train_and_test_pair(encoder, tmp_path, capsys, one_line_error):
    from tinylm.cli.main import main

    train = leaking_csv(tmp_path / "train.csv", n=8)
    test = leaking_csv(tmp_path / "test.csv", n=3, seed=1)
    report, _ = finetune_json(main, capsys, [
        "finetune", str(encoder), "--train", str(train), "--test", str(test), "--label-column", "lab",
        "--text-column", "text", "--seeds", "1", "--max-steps", "1", "--quiet", "--out", str(tmp_path / "ft"),
        "--json"])
    assert report["train"] == 24 and report["test"] == 9 and set(report["task"]["files"]) == {"train", "test"}
    member = str(tmp_path / "ft" / "pretrained" / "seed-0")
    com, _ = finetune_json(main, capsys, ["committee", member, "--repeats", "1", "--json"])
    assert com["members"][0]["accuracy"] == report["pretrained"]["runs"][0]["accuracy"]
    one_line_error(["committee", member, "--test", str(train)], "is not the file", "(--test FILE)")
