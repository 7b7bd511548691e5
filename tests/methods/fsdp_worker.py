"""One torchrun launch of 2 processes for tests/methods/test_methods_fsdp.py (every job in one launch: the
process group and imports are paid once). Not a test module: `python -m torch.distributed.run
--nproc_per_node=2 fsdp_worker.py SPEC.json`.

SPEC: {"report": path, "jobs": [{"name", "recipe": dict, "out": dir, "stop_at": int, "copy_stopped": dir|null}],
"resume": [{"recipe": dict, "out": dir}], "poisoned": [{"recipe": dict, "out": dir, "at": step}]}. Each job trains its recipe straight into OUT/straight and again
into OUT/resumed, stopped after `stop_at` steps (copied to `copy_stopped` for a resume elsewhere) and
resumed. Each `resume` entry continues a run another world size stopped (--force: the per-process batch
differs). Each `poisoned` entry trains with a NaN loss at step `at` (train.on_nan: rollback goes back to the
last sharded checkpoint). The test compares the checkpoints; rank 0 reports what each job logged and any unpickling.

`pickle.load`, `pickle.loads`, `torch.load` and `torch.serialization.load` raise in both processes from
before the first run: a sharded save and resume must never reach them.
"""

import json
import os
import pickle
import shutil
import sys

import torch
import torch.distributed as dist

CALLS: list[str] = []


class Unpickled(BaseException):
    """A BaseException: no `except Exception` on the way can swallow it."""


def forbid(owner, attr: str, label: str) -> None:
    def guard(*args, **kwargs):
        CALLS.append(label)
        raise Unpickled(f"{label} was called: tinylm must never unpickle")
    setattr(owner, attr, guard)


def forbid_unpickling() -> None:
    for owner, attr, label in ((pickle, "load", "pickle.load"), (pickle, "loads", "pickle.loads"),
                               (torch, "load", "torch.load"), (torch.serialization, "load", "torch.serialization.load")):
        forbid(owner, attr, label)


def poison_step(at: int, setattr=setattr) -> None:
    """Optimizer step `at` sees a NaN loss once (tests/train/test_non_finite.py's poison, keeping `no_sync`);
    `setattr`: a monkeypatch's, for the 1-process run in the test's own process."""
    import tinylm.train.loop as loop

    real, left = loop.train_step, [1]

    class Poisoned:
        def __init__(self, objective):
            self.objective, self.no_sync = objective, getattr(objective, "no_sync", None)

        def __call__(self, *args, **kwargs):
            total, loss, kl, logits = self.objective(*args, **kwargs)
            return total * float("nan"), loss * float("nan"), kl, logits

    def step(run, scaler):
        if run.step + 1 != at or not left[0]:
            return real(run, scaler)
        left[0] -= 1
        objective, run.objective = run.objective, Poisoned(run.objective)
        try:
            return real(run, scaler)
        finally:
            run.objective = objective
    setattr(loop, "train_step", step)


def main(spec_path: str) -> None:
    from tinylm.runs.execute import execute
    from tinylm.train.recipe import recipe_from_dict

    with open(spec_path) as f:
        spec = json.load(f)
    rank = int(os.environ["RANK"])
    report = {"events": {}, "stopped_at": {}}
    for job in spec["jobs"]:
        recipe = recipe_from_dict(job["recipe"])
        straight, resumed = os.path.join(job["out"], "straight"), os.path.join(job["out"], "resumed")
        execute(recipe, straight)

        def stop(run, record, at=job["stop_at"]):
            if run.step == at:
                run.stop_requested = True

        summary = execute(recipe, resumed, on_step=stop)
        report["stopped_at"][job["name"]] = summary["steps"]
        if job.get("copy_stopped") and rank == 0:
            shutil.copytree(resumed, job["copy_stopped"])
        dist.barrier()
        execute(recipe, resumed, resume=True)
        with open(os.path.join(straight, "metrics.jsonl")) as f:
            report["events"][job["name"]] = sorted({json.loads(line).get("event") for line in f} - {None})
    for entry in spec["resume"]:
        execute(recipe_from_dict(entry["recipe"]), entry["out"], resume=True, force=True)
    for entry in spec["poisoned"]:
        poison_step(entry["at"])
        execute(recipe_from_dict(entry["recipe"]), entry["out"])
    report["unpickled"] = CALLS
    gathered = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, CALLS)  # (an in-memory message between the ranks, not a file)
    report["unpickled_any_rank"] = sum(gathered, [])
    if rank == 0:
        with open(spec["report"], "w") as f:
            json.dump(report, f)


if __name__ == "__main__":
    forbid_unpickling()  # before anything of tinylm runs
    main(sys.argv[1])
