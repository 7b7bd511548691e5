"""`tinylm --help` is the first thing a new user reads: it says what tinylm is and which five commands to
start with, each with an example that the parser accepts as written."""

import shlex

import pytest

from tinylm.cli.main import COMMANDS, build_parser, main

FIRST_FIVE = ["demo", "prepare", "train", "eval", "compare"]


def _help(capsys) -> list[str]:
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    return capsys.readouterr().out.splitlines()


def test_help_opens_with_what_tinylm_is_not_a_developer_note(capsys):
    lines = _help(capsys)
    assert lines[0].startswith("usage: tinylm")
    opening = " ".join(lines[2:5])
    assert opening.startswith("tinylm pretrains small language models on small data")
    assert "Entry point" not in "\n".join(lines) and "dispatch" not in "\n".join(lines)


def test_help_names_five_commands_each_with_an_example_that_parses(capsys):
    lines = _help(capsys)
    start = next(i for i, line in enumerate(lines) if line.endswith("Five commands to start with:"))
    block = lines[start + 1:lines.index("positional arguments:")]
    named = [line.split()[0] for line in block if line.startswith("  ") and not line.startswith("   ")]
    examples = [line.strip() for line in block if line.strip().startswith("tinylm ")]
    assert named == FIRST_FIVE and set(named) <= set(COMMANDS)
    assert [e.split()[1] for e in examples] == FIRST_FIVE
    parser = build_parser()
    for example in examples:
        args = parser.parse_args(shlex.split(example)[1:])  # a renamed option would exit 2 here
        assert args.command == example.split()[1]


def test_help_lines_fit_a_terminal(capsys):
    assert max(len(line) for line in _help(capsys)[:20]) <= 100
