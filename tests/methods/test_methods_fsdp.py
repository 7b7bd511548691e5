"""Every method under 2-process FSDP on the CPU (gloo), in ONE torchrun launch (tests/methods/fsdp_worker.py):

- train -> stop -> resume ends bit for bit where the straight 2-process run ends;
- the 2-process run ends where a 1-process run of the same global batch ends, within TOLERANCE
  (the gradient is summed in another order: measured max |difference| 4.6e-5 or less after 12 steps);
- a sharded checkpoint resumes on 1 process, and a 1-process one on 2, ending where both straight runs end;
- no pickle is loaded in any process (pickle.load/loads and torch.load raise there and here);
- a NaN loss rolls back to a sharded checkpoint (`train.on_nan: rollback`) and ends as 1 process does.

Each method runs with options that make it use its primitives within 12 steps; together they cover every
primitive the Run has (the events logged are checked).
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tinylm.methods import registered
from tinylm.rundir.checkpoints import is_sharded, latest_checkpoint, load_weights
from tinylm.rundir.metrics import read_metrics

STEPS, STOP_AT, POISONED = 12, 5, 7
# max |w_2proc - w_1proc| after 12 steps (another summation order of the same gradient); measured on the 2-core
# CPU: sleep 4.6e-5 (its lr-0.5 episode amplifies it), grow 1.6e-6, forget 1.2e-6, distill 3.2e-7, freeze 2.6e-7;
# resharded grow runs 1.6e-6 from the other world size's run (and 1e-8 from their own)
TOLERANCE = 2e-4
WORKER = Path(__file__).with_name("fsdp_worker.py")

# Options that make each of tinylm's methods use its primitives inside a 12-step run.
OPTIONS = {
    "distill": lambda teacher: {"teachers": [str(teacher)]},
    "forget": lambda teacher: {"every": 3, "embedding_schedule": True},  # reinit, reset_optimizer, set_lr_scale
    "freeze": lambda teacher: {},                                           # set_trainable
    "grow": lambda teacher: {"stages": 2, "stage": "4 steps"},              # truncate, grow, set_trainable (parks state)
    # snapshot; episode 2's lr 0.5 makes it worse: rollback, then deep sleep (rebuild_model), then finish
    "sleep": lambda teacher: {"episode": "3 steps", "threshold": 10.0, "episodes": [{"at": 2, "lr": 0.5}]},
}
PRIMITIVES = {"reinit", "reset_optimizer", "restart_schedule", "set_trainable", "truncate", "grow", "snapshot",
              "rollback", "rebuild_model", "set_hyperparameters", "finish"}


def recipe(store, name: str, options: dict | None, processes: int) -> dict:
    """The same global batch (8 windows, 2 micro-batches: FSDP's `no_sync` for all but the last) on 1 or 2 processes."""
    return {"name": name, "data": {"store": str(store), "seq_len": 32, "sampler": "windows"},
            "model": {"name": "L2-4-32x2", "flavour": "llama"},
            "train": {"duration": f"{STEPS} steps", "batch_size": 4 // processes, "grad_accum": 2, "lr": 3e-3,
                      "log_every": 4, "precision": "fp32", "parallel": "fsdp"},
            "eval": {"every": 0, "windows": 4, "batch_size": 4}, "checkpoint": {"every": 0},
            "methods": [{name: options}] if options is not None else []}


def worker():
    """The worker script as a module (its unpickling guard is installed only when it runs as a script)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("fsdp_worker", WORKER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def nan_recipe(store, processes: int) -> dict:
    """No method; a NaN at step POISONED rolls back to the checkpoint of step 4 (`train.on_nan: rollback`)."""
    data = recipe(store, "nan", None, processes)
    return {**data, "train": {**data["train"], "on_nan": "rollback"}, "checkpoint": {"every": 4}}


def final_weights(out) -> dict:
    return load_weights(latest_checkpoint(out))


def max_difference(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max((a[k].float() - b[k].float()).abs().max().item() for k in a)


def identical(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def small_store(tmp_path_factory, book):
    """A 400-token BPE store of Alice's first 40,000 characters: GPT-2's 50k vocabulary would make the head 90%
    of every step."""
    from tinylm.data import prepare_store

    src = tmp_path_factory.mktemp("corpus") / "alice.txt"
    src.write_text(book("AliceInWonderland")[:40_000])
    out = tmp_path_factory.mktemp("stores") / "alice-bpe400"
    prepare_store([str(src)], "bpe:400", out, val_fraction=0.1, seed=0, docs="paragraph")
    return out


@pytest.fixture(scope="module")  # (one test uses it: see below)
def fsdp_runs(tmp_path_factory, small_store):
    """The 1-process runs here, the 2-process ones in one torchrun launch; then a 2-process checkpoint resumed
    here on 1 process. Returns (root, report)."""
    from tinylm.runs.execute import execute
    from tinylm.train.recipe import recipe_from_dict

    root = tmp_path_factory.mktemp("fsdp")
    teacher = root / "teacher"
    execute(recipe_from_dict({**recipe(small_store, "teacher", None, 1), "train": {
        "duration": "3 steps", "batch_size": 4, "precision": "fp32"}}), teacher)
    for name in OPTIONS:  # the 1-process references (train.parallel: fsdp alone is a whole model)
        execute(recipe_from_dict(recipe(small_store, name, OPTIONS[name](teacher), 1)), root / "one" / name)

    def stop(run, record):
        if run.step == STOP_AT:
            run.stop_requested = True

    with pytest.MonkeyPatch.context() as monkeypatch:  # the same NaN step on 1 process
        worker().poison_step(POISONED, monkeypatch.setattr)
        execute(recipe_from_dict(nan_recipe(small_store, 1)), root / "one" / "nan")
    grow_one, grow_two = (recipe(small_store, "grow", OPTIONS["grow"](teacher), n) for n in (1, 2))
    execute(recipe_from_dict(grow_one), root / "one-to-two", on_step=stop)
    spec = {"report": str(root / "report.json"),
            "jobs": [{"name": name, "recipe": recipe(small_store, name, OPTIONS[name](teacher), 2),
                      "out": str(root / "two" / name), "stop_at": STOP_AT,
                      "copy_stopped": str(root / "two-to-one") if name == "grow" else None} for name in OPTIONS],
            "resume": [{"recipe": grow_two, "out": str(root / "one-to-two")}],
            "poisoned": [{"recipe": nan_recipe(small_store, 2), "out": str(root / "two" / "nan"), "at": POISONED}]}
    (root / "spec.json").write_text(json.dumps(spec))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           str(WORKER), str(root / "spec.json")], capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    report = json.loads((root / "report.json").read_text())
    assert is_sharded(latest_checkpoint(root / "two-to-one"))
    execute(recipe_from_dict(grow_one), root / "two-to-one", resume=True, force=True)  # (checked below unpickling)
    return root, report


def test_every_method_of_tinylm_has_fsdp_options():
    """A new method must say here how it runs under FSDP (so it is tested there)."""
    ours = {name for name, cls in registered().items() if cls.__module__.startswith("tinylm.")}
    assert ours == set(OPTIONS)


@pytest.mark.slow  # one torchrun launch of 2 processes running 16 tiny runs, and 8 runs here: ~17 s on 2 cores
def test_fsdp_resumes_reshards_and_never_unpickles(fsdp_runs, no_unpickling, monkeypatch, tmp_path):
    """One test over the one launch (pytest-xdist would build a module fixture once per worker that runs a test
    of the module: twice the launch); each part is a function below."""
    every_method_resumes_exactly_and_ends_as_one_process(*fsdp_runs)
    a_checkpoint_resumes_on_another_number_of_processes(fsdp_runs[0])
    a_sharded_checkpoint_is_read_without_unpickling(fsdp_runs[0], no_unpickling, monkeypatch, tmp_path)
    a_damaged_or_incomplete_sharded_checkpoint_is_one_line_or_skipped(fsdp_runs[0], tmp_path)
    a_nan_rolls_back_to_a_sharded_checkpoint(fsdp_runs[0])


def a_nan_rolls_back_to_a_sharded_checkpoint(root):
    for out in (root / "one" / "nan", root / "two" / "nan"):
        rollbacks = [r for r in read_metrics(out / "metrics.jsonl") if r.get("event") == "nan_rollback"]
        assert [(r["bad_step"], r["to"]) for r in rollbacks] == [(POISONED, "step-00000004")], out
    assert max_difference(final_weights(root / "two" / "nan"), final_weights(root / "one" / "nan")) < TOLERANCE


def every_method_resumes_exactly_and_ends_as_one_process(root, report):
    assert not report["unpickled_any_rank"], report["unpickled_any_rank"]
    seen = set().union(*map(set, report["events"].values()))
    assert PRIMITIVES <= seen, f"no method used {sorted(PRIMITIVES - seen)}"
    for name in OPTIONS:
        straight, resumed = root / "two" / name / "straight", root / "two" / name / "resumed"
        assert 0 < report["stopped_at"][name] < STEPS, name
        assert is_sharded(latest_checkpoint(straight))
        two = final_weights(straight)
        assert identical(two, final_weights(resumed)), f"{name}: the resumed 2-process run differs"
        difference = max_difference(two, final_weights(root / "one" / name))
        assert difference < TOLERANCE, f"{name}: 2 processes end {difference:.2e} from 1"


def a_checkpoint_resumes_on_another_number_of_processes(root):
    one, two = final_weights(root / "one" / "grow"), final_weights(root / "two" / "grow" / "straight")
    for resharded in ("two-to-one", "one-to-two"):
        weights = final_weights(root / resharded)
        assert max_difference(weights, one) < TOLERANCE and max_difference(weights, two) < TOLERANCE, resharded
    assert not is_sharded(latest_checkpoint(root / "two-to-one"))  # a 1-process run writes today's format
    assert is_sharded(latest_checkpoint(root / "one-to-two"))


def a_sharded_checkpoint_is_read_without_unpickling(root, no_unpickling, monkeypatch, tmp_path):
    """In this process too: its weights and state whole (eval, export), and a 1-process resume of it."""
    import pickle
    import shutil

    from tinylm.rundir.checkpoints import load_state
    from tinylm.runs.execute import execute
    from tinylm.train.recipe import load_recipe

    monkeypatch.setattr(pickle, "loads", lambda *a, **k: no_unpickling.append("pickle.loads"))
    ckpt = latest_checkpoint(root / "two" / "sleep" / "resumed")
    assert is_sharded(ckpt)
    state = load_state(ckpt)
    assert state["optimizer"] and all(isinstance(v, torch.Tensor) for s in state["optimizer"].values() for v in s.values())
    run = tmp_path / "run"
    shutil.copytree(root / "two" / "forget" / "straight", run)
    (run / "summary.json").unlink()  # a run to continue: one more eval and end on 1 process
    execute(load_recipe(str(run / "config.yaml"), ["train.duration=14 steps", "train.batch_size=4"]), run,
            resume=True, force=True)
    assert not is_sharded(latest_checkpoint(run))
    from tinylm.runs.surgery import reset_embeddings  # GAFF's edit of a stopped run's checkpoint: a whole one out
    edited = tmp_path / "edited"
    reset_embeddings(ckpt, edited, seed=1)
    assert not is_sharded(edited) and (edited / "model.safetensors").is_file()
    assert "embed_tokens.weight" not in load_state(edited)["optimizer"] and load_state(edited)["optimizer"]


def a_damaged_or_incomplete_sharded_checkpoint_is_one_line_or_skipped(root, tmp_path):
    """The seal (state.json, written last by rank 0) covers every rank's shard file: a flipped byte or a lost
    shard is named, and a `.tmp-step-N` whose state.json was never written is not a checkpoint."""
    import shutil

    from tinylm.errors import UserError
    from tinylm.rundir.checkpoints import is_complete
    from tinylm.rundir.sharded import SHARDS, shard_files

    ckpt = tmp_path / "damaged" / "checkpoints" / "step-00000012"
    shutil.copytree(latest_checkpoint(root / "two" / "freeze" / "straight"), ckpt)
    first, second = shard_files(ckpt / SHARDS)
    data = bytearray(second.read_bytes())
    data[-1] ^= 0xFF
    second.write_bytes(bytes(data))
    with pytest.raises(UserError, match=f"{second.name} does not match the checksum"):
        load_weights(ckpt)
    assert not is_complete(ckpt, verify=True)
    second.unlink()
    assert not is_complete(ckpt)
    with pytest.raises(UserError, match=f"{second.name} is missing"):
        load_weights(ckpt)
    torn = ckpt.with_name(".tmp-step-00000013")
    shutil.copytree(ckpt, torn)
    (torn / "state.json").unlink()
    assert latest_checkpoint(tmp_path / "damaged") is None  # `latest` absent: scanning finds no complete checkpoint
