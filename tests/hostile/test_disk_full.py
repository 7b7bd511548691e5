"""Issue 16, class 12: a full disk (ENOSPC, injected at the writer) is one line naming the path and the space,
exit 2; a run stopped by it leaves no torn metrics line and resumes, once space is freed, into the run an
uninterrupted session makes (`trained_run`, the same recipe)."""

from __future__ import annotations

import errno
import json
import shutil

import torch
from safetensors.torch import load_file

from tinylm.cli.main import main
from tinylm.rundir.checkpoints import latest_checkpoint
from tinylm.rundir.metrics import read_metrics

TIMING = {"tokens_per_s", "data_s", "compute_s", "memory_mb", "flops_per_s", "mfu", "wall_s", "session_wall_s"}


def full(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def assert_same_run(a, b):
    def outcome(out):
        summary = json.loads((out / "summary.json").read_text())
        return ([{k: v for k, v in r.items() if k not in TIMING} for r in read_metrics(out / "metrics.jsonl")],
                {k: v for k, v in summary.items() if k not in TIMING | {"out_dir"}},
                load_file(str(latest_checkpoint(out) / "model.safetensors")))
    (metrics_a, summary_a, weights_a), (metrics_b, summary_b, weights_b) = outcome(a), outcome(b)
    assert metrics_b == metrics_a and summary_b == summary_a and summary_b["complete"]
    assert all(torch.equal(weights_a[k], weights_b[k]) for k in weights_a)


def train(trained_run, out, *extra):
    return ["train", trained_run.parent / "tiny.yaml", "--out", out, "--quiet", *extra]


def test_a_full_disk_at_a_checkpoint_is_one_line_and_the_run_resumes(trained_run, tmp_path, monkeypatch,
                                                                     assert_user_error):
    import tinylm.train.checkpoint as checkpoint

    out, calls, save_file = tmp_path / "run", [], checkpoint.save_file

    def fills_at_the_second(*args, **kwargs):  # step 8's checkpoint
        calls.append(1)
        return full() if len(calls) == 2 else save_file(*args, **kwargs)
    monkeypatch.setattr(checkpoint, "save_file", fills_at_the_second)
    err = assert_user_error(train(trained_run, out), "no space left", str(out / "checkpoints"), "needed",
                            "free space there", "--resume")
    assert "KiB needed" in err or "MiB needed" in err
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["latest", "step-00000004"]  # no .tmp-step left
    monkeypatch.setattr(checkpoint, "save_file", save_file)  # space freed
    assert main([str(a) for a in train(trained_run, out, "--resume")]) == 0
    assert_same_run(trained_run, out)


def test_a_full_disk_mid_metrics_line_leaves_no_torn_line(trained_run, tmp_path, monkeypatch, assert_user_error):
    """The line is half written when the disk fills: it is cut off again, so every line of the file reads."""
    import tinylm.train.metrics as metrics

    out, write = tmp_path / "run", metrics._write

    def half_then_full(file, data):
        if b'"step": 10' in data and b'"loss"' in data:
            file.write(data[: len(data) // 2])
            full()
        write(file, data)
    monkeypatch.setattr(metrics, "_write", half_then_full)
    assert_user_error(train(trained_run, out), "no space left", str(out / "metrics.jsonl"), "needed", "--resume")
    lines = (out / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines if "loss" in line][-1] == 8  # whole lines only
    monkeypatch.setattr(metrics, "_write", write)
    assert main([str(a) for a in train(trained_run, out, "--resume")]) == 0
    assert_same_run(trained_run, out)


def test_a_full_disk_in_prepare_surgery_and_export_is_one_line(trained_run, tiny_store, tmp_path, monkeypatch,
                                                               assert_user_error):
    """Their writers build in a temporary directory that goes on any error: nothing is left behind."""
    import transformers

    import tinylm.data.store_writer as store_writer
    import tinylm.runs.surgery as surgery

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("Alice was beginning to get very tired of sitting by her sister.\n\n" * 50)
    run = tmp_path / "trained"
    shutil.copytree(trained_run, run)
    monkeypatch.setattr(store_writer.SplitWriter, "write", full)
    assert_user_error(["prepare", corpus, "--tokenizer", "gpt2", "--out", tmp_path / "store"], "no space left",
                      str(tmp_path / "store"), "free space there", watch=[tmp_path / "store", tmp_path / "corpus.txt"])
    monkeypatch.setattr(surgery, "save_file", full)
    assert_user_error(["surgery", "reset-embeddings", run, "--out", tmp_path / "cut"], "no space left",
                      str(tmp_path / "cut"), watch=[tmp_path / "cut", run])
    monkeypatch.setattr(transformers.PreTrainedModel, "save_pretrained", full)
    assert_user_error(["export", run, "--out", tmp_path / "hf"], "no space left", str(tmp_path / "hf"),
                      watch=[tmp_path / "hf", run])
