"""Corrupt, torn, foreign and silently flipped files in a run directory (issue 16, classes 1 and 13).

Every command that reads a run directory or a checkpoint turns a bad file into one line naming the file
and what to do, exit status 2, no traceback, nothing written (`assert_user_error`). Before: SafetensorError
"incomplete metadata" / "header too large", JSONDecodeError, `Error(s) in loading state_dict`,
yaml.parser.ParserError, `'NoneType' object is not iterable` tracebacks; and a flipped byte in the
weights went unnoticed. The run is trained once per session (`trained_run`) and copied per case.
"""

import json
import shutil

import pytest

pytestmark = pytest.mark.usefixtures("no_unpickling")

CKPT = "checkpoints/step-00000012"
DELETE = "delete"  # the checkpoint fix: "delete .../step-00000012 and resume from the previous checkpoint"


def _flip(data: bytes, at: int = -1) -> bytes:
    data = bytearray(data)
    data[at] ^= 0x01
    return bytes(data)


def _unseal(run):
    """Drop the checksums from state.json, as in a checkpoint written before they were kept."""
    path = run / CKPT / "state.json"
    state = json.loads(path.read_text())
    state.pop("sha256", None)
    path.write_text(json.dumps(state))


def _edit_json(name, **changes):
    def edit(run):
        _unseal(run)
        path = run / CKPT / name
        path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))
    return edit


def _set(name, data):
    def corrupt(run):
        (run / name).parent.mkdir(parents=True, exist_ok=True)
        (run / name).write_bytes(data(run / name) if callable(data) else data)
    return corrupt


def _remove(name):
    return lambda run: (run / name).unlink()


# (case id, how the run is damaged, what the one line names)
CHECKPOINT_FILES = [
    ("weights-empty", _set(f"{CKPT}/model.safetensors", b""), ["model.safetensors", "empty", DELETE]),
    ("weights-truncated", _set(f"{CKPT}/model.safetensors", lambda p: p.read_bytes()[:200]),
     ["model.safetensors", DELETE]),
    ("weights-garbage", _set(f"{CKPT}/model.safetensors", bytes(range(256)) * 8), ["model.safetensors", DELETE]),
    ("weights-header-too-large", _set(f"{CKPT}/model.safetensors", (2**62).to_bytes(8, "little") + b"{}"),
     ["model.safetensors", DELETE]),
    ("weights-flipped-byte", _set(f"{CKPT}/model.safetensors", lambda p: _flip(p.read_bytes())),
     ["model.safetensors", "checksum", DELETE]),
    ("weights-missing", _remove(f"{CKPT}/model.safetensors"), ["model.safetensors", DELETE]),
    ("config-invalid-json", _set(f"{CKPT}/model_config.json", b'{"n_layers": 1,'),
     ["model_config.json", "not valid JSON", DELETE]),
    ("config-empty", _set(f"{CKPT}/model_config.json", b""), ["model_config.json", "empty", DELETE]),
    ("config-a-list", _set(f"{CKPT}/model_config.json", b"[1, 2]"), ["model_config.json", DELETE]),
    ("config-binary", _set(f"{CKPT}/model_config.json", b"\xff\xfe\x00garbage"), ["model_config.json", DELETE]),
    ("config-flipped-digit", _set(f"{CKPT}/model_config.json",
                                  lambda p: p.read_bytes().replace(b'"n_heads": 2', b'"n_heads": 3')),
     ["model_config.json", "checksum", DELETE]),
    ("config-unknown-key", _edit_json("model_config.json", colour="blue"), ["model_config.json", "colour", DELETE]),
    ("config-other-model", _edit_json("model_config.json", d_model=32), ["model.safetensors", "model_config.json",
                                                                         DELETE]),
    ("config-more-layers", _edit_json("model_config.json", n_layers=2), ["model.safetensors", "missing", DELETE]),
    ("state-json-invalid", _set(f"{CKPT}/state.json", b'{"counters": {'), ["state.json", DELETE]),
    ("state-json-empty", _set(f"{CKPT}/state.json", b""), ["state.json", DELETE]),
    ("state-json-a-string", _set(f"{CKPT}/state.json", b'"hello"'), ["state.json", DELETE]),
]
TOKENIZER_FILES = [  # read by the commands that load a model to use it
    ("tokenizer-garbage", _set(f"{CKPT}/tokenizer.json", b'{"model": '), ["tokenizer.json", "tokenizer"]),
    ("tokenizer-meta-garbage", _set(f"{CKPT}/tokenizer_meta.json", b"\x00\x01"), ["tokenizer_meta.json", DELETE]),
]
STATE_FILES = [  # read by a resume and by surgery, not by evaluation
    ("state-tensors-missing", _remove(f"{CKPT}/state.safetensors"), ["state.safetensors", DELETE]),
    ("state-tensors-empty", _set(f"{CKPT}/state.safetensors", b""), ["state.safetensors", DELETE]),
    ("state-tensors-truncated", _set(f"{CKPT}/state.safetensors", lambda p: p.read_bytes()[:-7]),
     ["state.safetensors", DELETE]),
    ("state-tensors-flipped-byte", _set(f"{CKPT}/state.safetensors", lambda p: _flip(p.read_bytes())),
     ["state.safetensors", "checksum", DELETE]),
    ("state-json-no-counters", _set(f"{CKPT}/state.json", b"{}"), ["state.json", DELETE]),
]
RESUME_ONLY = [
    ("checkpoints-folder-deleted", lambda run: shutil.rmtree(run / "checkpoints"), ["summary.json", "metrics.jsonl"]),
    ("every-checkpoint-torn", lambda run: [p.unlink() for p in (run / "checkpoints").glob("step-*/state.json")],
     ["state.json", "missing", DELETE]),
    ("state-json-foreign", _edit_json("state.json", counters={"step": "twelve"}), ["state.json", DELETE]),
    ("config-yaml-garbage", _set("config.yaml", b"train: {lr: [1,\n"), ["config.yaml", "not valid YAML", "--force"]),
    ("config-yaml-empty", _set("config.yaml", b""), ["config.yaml", "empty", "--force"]),
    ("config-yaml-a-list", _set("config.yaml", b"- 1\n- 2\n"), ["config.yaml", "--force"]),
    ("config-yaml-binary", _set("config.yaml", b"\xff\xfe\x00\x01"), ["config.yaml", "--force"]),
    ("summary-garbage", _set("summary.json", b'{"steps": 12, "val_'), ["summary.json", "not valid JSON", "--resume"]),
    ("summary-a-list", _set("summary.json", b"[]"), ["summary.json", "--resume"]),
    ("metrics-garbage-middle", _set("metrics.jsonl", lambda p: b"{garbage\n" + p.read_bytes()),
     ["metrics.jsonl", "line 1"]),
]
NO_COMPLETE_CHECKPOINT = [
    ("every-checkpoint-gone", lambda run: [shutil.rmtree(p) for p in (run / "checkpoints").glob("step-*")],
     ["checkpoints", "no complete checkpoint"]),
]


def copy_run(source, run, checkpoints=("step-00000012",)):
    """A copy of the run with only the named checkpoints (the latest is all a reader reads): cheap per case."""
    shutil.copytree(source, run, ignore=lambda d, names: [n for n in names if n.startswith("step-")
                                                           and n not in checkpoints])
    return run


def _commands(run, tmp_path, tiny_store, trained_run):
    """Every command that reads a checkpoint: (name, argv, paths that must not change)."""
    recipe = tmp_path / "recipe.yaml"
    shutil.copyfile(trained_run / "config.yaml", recipe)
    return {
        "resume": (["train", "--out", run, "--resume"], [run]),
        "compare": (["compare", run, run], [run]),
        "compare-x": (["compare", run, run, "--x", "steps", "--json"], [run]),
        "eval": (["eval", run, "--val", tiny_store], [run]),
        "eval-ensemble": (["eval", "--ensemble", run, run, "--val", tiny_store, "--out", tmp_path / "ens"],
                          [run, tmp_path / "ens"]),
        "export": (["export", run, "--out", tmp_path / "hf"], [run, tmp_path / "hf"]),
        "generate": (["generate", run, "--prompt", "Alice", "--tokens", "2"], [run]),
        "surgery": (["surgery", "reset-embeddings", run, "--out", tmp_path / "cut"], [run, tmp_path / "cut"]),
        "init-from": (["train", recipe, "--out", tmp_path / "new", "--set", f"model.init_from={run}"],
                      [run, tmp_path / "new"]),
        "teacher": (["train", recipe, "--out", tmp_path / "student", "--set",
                     f"methods=[{{distill: {{teachers: [{run}]}}}}]"], [run]),  # the student's --out: class 8's
    }


READERS = ("resume", "eval", "eval-ensemble", "export", "generate", "surgery", "init-from", "teacher")
CASES = ([pytest.param(case, damage, needles, command, id=f"{case}-{command}")
          for case, damage, needles in CHECKPOINT_FILES for command in READERS]
         + [pytest.param(case, damage, needles, command, id=f"{case}-{command}")
            for case, damage, needles in TOKENIZER_FILES for command in ("eval", "eval-ensemble", "export", "generate")]
         + [pytest.param(case, damage, needles, command, id=f"{case}-{command}")
            for case, damage, needles in STATE_FILES for command in ("resume", "surgery")]
         + [pytest.param(case, damage, needles, "resume", id=f"{case}-resume") for case, damage, needles in RESUME_ONLY]
         + [pytest.param(case, damage, needles, command, id=f"{case}-{command}")
            for case, damage, needles in NO_COMPLETE_CHECKPOINT for command in ("resume", "eval", "export")])


CASES += [pytest.param(case, damage, needles, "compare", id=f"{case}-compare") for case, damage, needles in RESUME_ONLY
          if case.startswith("summary")]
CASES += [pytest.param("eval-report-garbage", _set("eval/hellaswag.json", b'{"acc": '), ["hellaswag.json", "tinylm eval"],
                       "compare-x", id="eval-report-garbage-compare")]
CASES += [pytest.param("metrics-garbage-middle", RESUME_ONLY[-1][1], ["metrics.jsonl", "line 1"], "compare-x",
                       id="metrics-garbage-middle-compare")]


@pytest.mark.parametrize("case, damage, needles, command", CASES)
def test_a_damaged_run_is_refused_in_one_line(case, damage, needles, command, trained_run, tiny_store, tmp_path,
                                              assert_user_error):
    run = copy_run(trained_run, tmp_path / "run")
    damage(run)
    argv, watch = _commands(run, tmp_path, tiny_store, trained_run)[command]
    assert_user_error(argv, *needles, watch=watch)


def test_a_corrupt_store_meta_is_refused(trained_run, tiny_store, tmp_path, assert_user_error):
    """Resuming reads the run's store too: its meta.json torn is one line naming it (re-run prepare)."""
    store = tmp_path / "store"
    shutil.copytree(tiny_store, store)
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    (run / "config.yaml").write_text((run / "config.yaml").read_text().replace(str(tiny_store), str(store)))
    (store / "meta.json").write_text('{"format": "tinylm-token-store", "splits": {')
    assert_user_error(["train", "--out", run, "--resume"], "meta.json", "tinylm prepare", watch=[run, store])


def test_a_flipped_byte_in_a_snapshot_is_caught_on_rollback(make_run, tmp_path):
    """Snapshots (sleep's plateau rollback) are sealed like checkpoints: a rollback onto damaged weights is refused."""
    from tinylm.errors import UserError

    run = make_run(out_dir=tmp_path / "run")
    run.snapshot("best")
    (tensors,) = (tmp_path / "run" / "snapshots").glob("*/snapshot.safetensors")
    tensors.write_bytes(_flip(tensors.read_bytes()))
    with pytest.raises(UserError, match="snapshot.safetensors does not match the checksum"):
        run.rollback("best")
