"""examples/slurm/*.sbatch parse as bash and name only options that tinylm train and torchrun have."""

import re
import subprocess
from pathlib import Path

import pytest

SCRIPTS = sorted((Path(__file__).parent.parent / "examples" / "slurm").glob("*.sbatch"))


def _commands(script: Path) -> list[str]:
    """The script's command lines, backslash continuations joined, comments dropped."""
    text = re.sub(r"\\\n\s*", " ", script.read_text())
    return [line.split(" #")[0] for line in text.splitlines() if not line.lstrip().startswith("#")]


def _options(tokens: list[str]) -> set[str]:
    return {t.split("=")[0] for t in tokens if t.startswith("--")}


def _help_options(parser) -> set[str]:
    return {s for action in parser._actions for s in action.option_strings}


def _tinylm_train_options(capsys) -> set[str]:
    from tinylm.cli.main import main

    with pytest.raises(SystemExit):
        main(["train", "--help"])
    return set(re.findall(r"(?<![\w-])(--[a-z][a-z-]*)", capsys.readouterr().out))


def test_there_are_two_scripts():
    assert [s.name for s in SCRIPTS] == ["train-multinode.sbatch", "train.sbatch"]


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda s: s.name)
def test_script_is_bash_and_names_real_options(script, capsys):
    from torch.distributed.run import get_args_parser

    subprocess.run(["bash", "-n", str(script)], check=True)
    train_options, torchrun_options = _tinylm_train_options(capsys), _help_options(get_args_parser())
    runs = [line for line in _commands(script) if "tinylm.cli.main train" in line or "tinylm train" in line]
    assert runs, "the script trains nothing"
    for line in runs:
        before, after = re.split(r"-m tinylm\.cli\.main train|tinylm train", line, maxsplit=1)
        assert _options(after.split()) <= train_options, line
        assert "--resume auto" in after
        if "torchrun" in before:
            assert _options(before.split()[before.split().index("torchrun") + 1:]) <= torchrun_options, line
    directives = [line for line in script.read_text().splitlines() if line.startswith("#SBATCH")]
    assert any("--requeue" in d for d in directives) and any("--signal=B:USR1@" in d for d in directives)


def _stub(bin_dir: Path, name: str, body: str) -> None:
    path = bin_dir / name
    path.write_text("#!/bin/bash\n" + body + "\n")
    path.chmod(0o755)


@pytest.mark.slow  # ~15 s on 2 loaded cores: two `tinylm train` starts under the script
def test_train_sbatch_stops_at_a_checkpoint_on_the_warning_requeues_and_the_next_start_finishes(tiny_recipe, tmp_path):
    """train.sbatch under stand-ins for srun/torchrun (run the command), scancel (signal it) and scontrol
    (record the requeue): the warning reaches training, which checkpoints and exits 130; the job is requeued
    once; the same script started again finishes the run."""
    import json
    import os
    import signal
    import sys
    import time

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    _stub(bin_dir, "srun", f'echo $$ > {bin_dir}/step.pid; exec "$@"')
    _stub(bin_dir, "torchrun", f'while [ "$1" != -m ]; do shift; done; exec {sys.executable} "$@"')
    _stub(bin_dir, "scancel", f'[ "$1" = --signal=USR1 ] && kill -USR1 "$(cat {bin_dir}/step.pid)"')
    _stub(bin_dir, "scontrol", f'echo "$@" >> {bin_dir}/scontrol.log')
    path = tiny_recipe(train={"duration": "60 steps", "batch_size": 2, "log_every": 1, "threads": 1},
                       model={"name": "L2-2-16x2", "flavour": "llama"}, data={"seq_len": 16},
                       eval={"every": 0, "windows": 2, "batch_size": 2}, checkpoint={"every": 0})
    out = tmp_path / "run"
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "RECIPE": str(path), "OUT": str(out),
           "SLURM_JOB_ID": "42"}
    script = [s for s in SCRIPTS if s.name == "train.sbatch"][0]
    job = subprocess.Popen(["bash", str(script)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    metrics = out / "metrics.jsonl"
    deadline = time.time() + 120
    while job.poll() is None and time.time() < deadline and not (metrics.exists() and '"loss"' in metrics.read_text()):
        time.sleep(0.02)
    job.send_signal(signal.SIGUSR1)  # what --signal=B:USR1@120 does
    stdout, stderr = job.communicate(timeout=120)
    assert job.returncode == 130, stderr[-3000:]
    assert "requeueing job 42" in stdout and (bin_dir / "scontrol.log").read_text() == "requeue 42\n"
    summary = json.loads((out / "summary.json").read_text())
    assert 0 < summary["steps"] < 60 and not summary["complete"]

    again = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    assert json.loads((out / "summary.json").read_text())["complete"]
    assert (bin_dir / "scontrol.log").read_text() == "requeue 42\n"  # not requeued after finishing
