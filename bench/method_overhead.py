"""What sleep, forget and grow add to a training step: the time spent in their own code.

Each method runs on BabyLlama 16M (8 x 128; precision auto: bf16 where the CPU computes it natively,
else fp32) with its events every `--every` steps, so that a short run sees several; the loop's
`run.emit` is timed, which holds everything a method does (its hooks and the Run primitives they
call: optimizer resets, re-initialisation, rebuilding the model, growing it). Reported per method:

* `hooks_ms_per_step`: the median time in the method's code on a step without an event;
* `event_hooks_ms`: the mean time in the method's code on a step with an event (a sleep, a reset, a growth);
* `event_ms`: the mean extra wall time of that step and the next over two ordinary steps: the event's
  whole cost, including (with `--compile`) compiling the graph of a new structure;
* `overhead_at_paper_cadence`: (hooks per step + event / cadence) over the median training step, with
  the papers' cadences: a sleep every 10,000 steps (FORGETTER, Baby10M), a reset every 250 updates
  (GAFF's shortest k), a growth every 2,500 steps (10k incremental steps over 4 stages) and a
  change of the frozen set half-way through each stage;
* with `--compile`, a deep sleep's rebuilt model reuses the compiled graph (same structure); each
  growth stage and each change of the frozen set is a new graph to compile, and what that costs
  depends on torch's on-disk compile caches: run it twice with a fresh `TORCHINDUCTOR_CACHE_DIR` to
  see the first run of a structure (cold) and every later one (a re-run, another seed: warm).

What a method changes on purpose (grow trains fewer or more layers, freezing skips gradients) is
compute, not overhead, and is not counted. The evaluation the paper's sleep policy runs at each
episode's end is one validation pass per 10,000 steps, timed by `tinylm eval`, not here. Prints JSON.

    python bench/method_overhead.py [--every 20] [--steps 60] [--compile]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from throughput import SyntheticStream
from tinylm.precision import cpu_capability

# Steps between events at the papers' settings. grow has two per stage: the growth, and its phase
# switch half-way (phase1_fraction 0.5: the old blocks unfreeze).
CADENCE = {"sleep (light)": 10_000, "sleep (deep)": 10_000, "forget": 250, "grow": 1_250}


def method_options(every: int, depth: int) -> dict[str, list]:
    return {
        "plain": [],
        "sleep (light)": [{"sleep": {"episode": f"{every} steps", "policy": "light"}}],
        "sleep (deep)": [{"sleep": {"episode": f"{every} steps", "policy": "deep"}}],
        "forget": [{"forget": {"every": every}}],
        "grow": [{"grow": {"stages": min(4, depth), "stage": f"{every} steps"}}],
    }


def build(preset: str, batch: int, seq: int, steps: int, methods: list, compile_: bool, precision: str = "auto"):
    from tinylm.methods import build_methods
    from tinylm.models import build_model, resolve_model_config
    from tinylm.train.recipe import recipe_from_dict
    from tinylm.train.run import Run

    recipe = recipe_from_dict({"data": {"store": "synthetic", "seq_len": seq}, "model": {"name": preset},
                               "train": {"batch_size": batch, "precision": precision, "lr": 1e-4, "duration": steps,
                                         "compile": compile_, "log_every": 10**9}, "methods": methods})
    torch.manual_seed(0)
    model = build_model(resolve_model_config(preset, max_seq_len=max(seq, 256)))
    batches = SyntheticStream(model.config.vocab_size, batch, seq, torch.device("cpu"))
    return Run(recipe, model, batches, [], torch.device("cpu"), steps, build_methods(methods))


def measure(run, steps: int) -> tuple[list[float], list[float], list[bool]]:
    """Per step: (wall seconds, seconds inside the methods' events, whether a primitive was called)."""
    from tinylm.train.loop import train_step

    spent, called = [0.0], [False]
    emit, log_event = run.emit, run.log_event

    def logged(event, **fields):  # every Run primitive logs itself: this is how an event step is known
        called[0] = True
        log_event(event, **fields)
    run.log_event = logged

    def timed_emit(event, *args):
        t = time.perf_counter()
        emit(event, *args)
        spent[0] += time.perf_counter() - t
    run.emit = timed_emit
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    run.emit("start")
    walls, hooks, events = [], [], []
    for _ in range(steps):
        spent[0], called[0] = 0.0, False
        t = time.perf_counter()
        train_step(run, scaler)
        walls.append(time.perf_counter() - t)
        hooks.append(spent[0])
        events.append(called[0])
    return walls, hooks, events


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="babyllama2-16m")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--seq", type=int, default=128)
    p.add_argument("--every", type=int, default=20, help="steps between a method's events in this benchmark")
    p.add_argument("--steps", type=int, default=61, help="steps per method (the first one warms up)")
    p.add_argument("--compile", action="store_true")
    p.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16"),
                   help="auto (default): bf16 where this CPU computes it natively, else fp32")
    a = p.parse_args()
    results = {}
    plain_step = None
    from tinylm.models import resolve_model_config
    depth = resolve_model_config(a.preset).n_layers
    for name, methods in method_options(a.every, depth).items():
        run = build(a.preset, a.batch, a.seq, 10**6, methods, a.compile, a.precision)  # measured: the first --steps
        walls, hooks, events = measure(run, a.steps)
        walls, hooks, events = walls[1:], hooks[1:], events[1:]  # step 1 warms up (and compiles)
        event_steps = [i for i, e in enumerate(events) if e]
        quiet = [i for i in range(len(walls)) if i not in event_steps and i - 1 not in event_steps]
        step = statistics.median(walls[i] for i in quiet)
        row = {"median_step_ms": round(step * 1e3, 2)}
        if name == "plain":
            plain_step = step
        else:
            hook = statistics.median(hooks[i] for i in quiet)
            # An event's whole cost: its step and the next one beyond two ordinary steps (hooks, and
            # under --compile the new graph's compilation, which happens in whichever step first runs it)
            extra = [walls[i] + walls[i + 1] - 2 * step for i in event_steps if i + 1 < len(walls)]
            event = statistics.mean(extra) if extra else 0.0
            cadence = CADENCE[name]
            row.update({"hooks_ms_per_step": round(hook * 1e3, 3), "events": len(event_steps),
                        "event_hooks_ms": round(statistics.mean(hooks[i] for i in event_steps) * 1e3, 2),
                        "event_ms": round(event * 1e3, 1), "paper_cadence_steps": cadence,
                        "overhead_at_paper_cadence": round((hook + event / cadence) / plain_step, 5)})
        results[name] = row
        print(json.dumps({name: row}), flush=True)
    print(json.dumps({"benchmark": "method overhead", "preset": a.preset, "batch": a.batch, "seq": a.seq,
                      "precision": run.precision, "precision_requested": a.precision,
                      "cpu_capability": cpu_capability(), "compile": a.compile, "every": a.every, "threads": torch.get_num_threads(),
                      "torch": torch.__version__, "results": results}, indent=1))


if __name__ == "__main__":
    main()
