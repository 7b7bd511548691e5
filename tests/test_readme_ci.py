"""The README's two commands are what CI and a new user run: keep them in step."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _commands(readme: str) -> list[str]:
    blocks = readme.split("```")[1::2]
    return [line.strip() for block in blocks for line in block.splitlines() if line.strip().startswith("pip install")]


def test_ci_runs_exactly_the_readme_test_command():
    readme = (REPO / "README.md").read_text()
    commands = _commands(readme)
    assert len(commands) == 2, commands
    demo, tests = commands
    assert "tinylm demo" in demo and "pytest" in tests
    assert tests in (REPO / ".ci" / "run").read_text().splitlines()
    assert "torch==2.13.0" in demo and "torch==2.13.0" in tests  # never a multi-GB CUDA build


def test_models_command_lists_presets(capsys):
    import json

    from tinylm.cli.main import main

    assert main(["models", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["gpt2-124m"]["parameters"] == 124_439_808
    assert 0 < rows["pythia-70m"]["embedding_share"] < 1
    assert rows["bert-6"]["kind"] == "encoder"
    assert main(["models", "--recipes"]) == 0
    assert "demo" in capsys.readouterr().out
