"""Runs count words seen (BabyLM's count) beside tokens, and checkpoint when they reach `checkpoint.words`."""

import numpy as np
import pytest
import yaml
from safetensors.torch import load_file

from tinylm.data import prepare_store
from tinylm.data.words_seen import SCALE
from tinylm.rundir.checkpoints import state_summary
from tinylm.rundir.files import read_json, read_jsonl
from tinylm.rundir.checkpoints import latest_checkpoint


def _logs(run_dir):
    return [r for r in read_jsonl(run_dir / "metrics.jsonl", "") if "loss" in r]


def test_a_sequential_epoch_run_counts_exactly_the_words_of_the_documents_it_read(tmp_path, book):
    """Sequential epochs over whole documents: the run's words are a direct count of those documents' text."""
    from tinylm.runs.execute import execute
    from tinylm.train.recipe import recipe_from_dict

    lines = [ln for ln in book("PeterPan").splitlines() if ln.strip()][:120]
    (tmp_path / "train.txt").write_text("\n".join(lines) + "\n")
    (tmp_path / "val.txt").write_text("Some held out words to validate on.\n" * 20)
    store = prepare_store([str(tmp_path / "train.txt")], "gpt2", tmp_path / "store",
                          val_files=[str(tmp_path / "val.txt")], docs="line")
    offsets = np.asarray(store.documents("train"))
    # a window width and a step count whose windows end exactly where document k ends (batch size 1)
    width, k = next((w, k) for w in range(9, 40) for k, o in enumerate(offsets[1:], 1) if o % w == 0 and 3 <= o // w <= 12)
    steps = int(offsets[k]) // width
    recipe = recipe_from_dict({
        "name": "seq", "data": {"store": str(store.path), "seq_len": width - 1, "sampler": "epochs"},
        "model": {"name": "L1-2-16x2", "flavour": "llama"},
        "train": {"duration": f"{steps} steps", "batch_size": 1, "log_every": 1, "precision": "fp32"},
        "eval": {"every": 0, "windows": 1, "batch_size": 1}})
    summary = execute(recipe, tmp_path / "run")
    direct = sum(len(ln.split()) for ln in lines[:k])
    assert summary["words"] == direct
    assert state_summary(latest_checkpoint(tmp_path / "run"))["batches"]["words_seen"] == direct * SCALE
    assert read_json(tmp_path / "run" / "summary.json", "")["words"] == direct
    assert _logs(tmp_path / "run")[-1]["words"] == direct


def test_words_checkpoints_fire_at_the_first_step_past_each_count_and_are_kept(words_runs):
    recipe, straight, _ = words_runs
    logs = {r["step"]: r["words"] for r in _logs(straight)}
    table = state_summary(latest_checkpoint(straight))["word_checkpoints"]
    assert list(table) == ["chck_100", "chck_600"]
    for entry in table.values():
        step, words = entry["step"], entry["words"]
        assert entry["words_seen"] >= words and logs[step] >= words
        assert step == 1 or logs[step - 1] <= words  # (log lines round to whole words)
    kept = sorted(p.name for p in (straight / "checkpoints").glob("step-*"))
    # keep: 1 prunes every periodic checkpoint but the last; the words checkpoints stay
    assert kept == sorted({f"step-{e['step']:08d}" for e in table.values()} | {"step-00000016"})


def test_words_checkpoints_survive_a_resume(words_runs):
    _, straight, resumed = words_runs
    a, b = (state_summary(latest_checkpoint(d)) for d in (straight, resumed))
    assert a["word_checkpoints"] == b["word_checkpoints"]
    assert a["batches"]["words_seen"] == b["batches"]["words_seen"]
    assert [(r["step"], r["words"]) for r in _logs(straight)] == [(r["step"], r["words"]) for r in _logs(resumed)]
    names = sorted(p.name for p in (straight / "checkpoints").glob("step-*"))
    assert names == sorted(p.name for p in (resumed / "checkpoints").glob("step-*"))
    for name in names:  # the same weights at every words checkpoint and at the end
        x, y = (load_file(str(d / "checkpoints" / name / "model.safetensors")) for d in (straight, resumed))
        assert all((x[key] == y[key]).all() for key in x)


def test_a_resume_from_a_checkpoint_without_words_counts_them_again(words_runs, tmp_path):
    """A checkpoint written before runs counted words: the count is rebuilt from the sampler's position."""
    import json
    import shutil

    from tinylm.train.build import build_run

    recipe, straight, _ = words_runs
    run = tmp_path / "run"
    shutil.copytree(straight, run)
    ckpt = latest_checkpoint(run)
    state = read_json(ckpt / "state.json", "")
    seen = state["batches"].pop("words_seen")
    (ckpt / "state.json").write_text(json.dumps(state))
    rebuilt = build_run(recipe, run, resume=True)
    assert rebuilt.words_seen == seen
    rebuilt.metrics.close()


@pytest.mark.parametrize("words, needle", [
    (["2M", "1M"], "must increase"),
    (["1M", "1M"], "must increase"),
    (["0"], "positive word count"),
    (["1e400"], "positive word count"),
    (["lots"], "positive word count"),
    ("often", "positive word count"),
])
def test_a_bad_words_list_is_one_line_and_creates_nothing(tiny_recipe, tmp_path, one_line_error, words, needle):
    recipe = tiny_recipe(checkpoint={"words": words})
    one_line_error(["train", str(recipe), "--out", str(tmp_path / "run")], "checkpoint.words", needle)
    assert not (tmp_path / "run").exists()


def test_words_checkpoints_on_a_store_without_word_counts_are_one_line(tiny_store, tmp_path, one_line_error):
    import json
    import shutil

    old = tmp_path / "old-store"
    shutil.copytree(tiny_store, old)
    meta = json.loads((old / "meta.json").read_text())
    for split in meta["splits"].values():
        (old / split.pop("words_file")).unlink()
    (old / "meta.json").write_text(json.dumps(meta))
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump({
        "name": "old", "data": {"store": str(old), "seq_len": 16}, "model": {"name": "L1-2-16x2"},
        "train": {"duration": "2 steps", "batch_size": 2}, "checkpoint": {"words": ["1k"]}}))
    one_line_error(["train", str(recipe), "--out", str(tmp_path / "run")], "does not count words", "checkpoint.words")
    assert not (tmp_path / "run").exists()
