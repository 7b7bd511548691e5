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
