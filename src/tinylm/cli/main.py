"""Entry point: dispatch to one command module, turn user mistakes into one line and exit 2."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from tinylm.errors import UserError

# Command modules, in the order `tinylm --help` lists them. Each has `register(subparsers)`.
COMMANDS = ("prepare", "data", "models", "train", "demo", "generate", "adapt", "finetune", "committee", "eval",
            "export", "compare", "seeds", "surgery", "sweep")


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage mistake on one line (exit 2), not a usage dump."""

    def error(self, message: str):  # noqa: D401 - argparse hook
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="tinylm", description=__doc__)
    parser.add_argument("--debug", action="store_true", help="show tracebacks instead of one-line errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)
    for name in COMMANDS:
        importlib.import_module(f"tinylm.cli.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv  # accepted anywhere on the line, not only before the command
    argv = [a for a in argv if a != "--debug"]
    logging.basicConfig(level=logging.DEBUG if debug else logging.INFO, format="%(message)s")
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except UserError as e:
        if debug:
            raise
        print(f"tinylm {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"tinylm {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `tinylm data info --json | head`: the reader left, nothing to report
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
