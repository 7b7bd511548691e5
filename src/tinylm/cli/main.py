"""tinylm pretrains small language models on small data with unconventional curricula (sleep,
forgetting, growth, distillation, committees) and compares them honestly, at equal compute, on a
laptop CPU or one GPU. Five commands to start with:

  demo      train a tiny Llama on the bundled books and show what it learned
            tinylm demo
  prepare   turn text files into a token store
            tinylm prepare data/books --tokenizer gpt2 --out stores/books
  train     train a recipe (the bundled ones: tinylm models --recipes) into a run directory
            tinylm train forgetter-tiny --out runs/forgetter-tiny
  eval      BLiMP, HellaSwag and validation loss of a run
            tinylm eval runs/forgetter-tiny --blimp data/blimp
  compare   runs side by side (--x flops: at equal compute)
            tinylm compare runs/*
"""

# Developer note: this module is the entry point. It dispatches to one command module per command
# (tinylm/cli/<command>.py, each with `register(subparsers)`), and turns a user mistake (`UserError`)
# into one line on stderr and exit status 2; a run that diverged (`TrainingDiverged`: a NaN/inf loss, train.on_nan)
# is one line too, status 3. Its docstring above is what `tinylm --help` shows first.

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from tinylm.errors import TrainingDiverged, UserError

# Command modules, in the order `tinylm --help` lists them. Each has `register(subparsers)`.
COMMANDS = ("prepare", "data", "models", "train", "demo", "generate", "adapt", "finetune", "committee", "eval",
            "export", "compare", "report", "runs", "seeds", "surgery", "sweep")


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage mistake on one line (exit 2), not a usage dump."""

    def error(self, message: str):  # noqa: D401 - argparse hook
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="tinylm", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                     epilog="`tinylm COMMAND --help` gives each command's options; --debug shows tracebacks.")
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
    except TrainingDiverged as e:  # a NaN/inf loss or gradient norm (train.on_nan): not a finished run
        if debug:
            raise
        print(f"tinylm {args.command}: error: {e}", file=sys.stderr)
        return TrainingDiverged.EXIT_STATUS
    except BrokenPipeError:  # `tinylm data info --json | head`: the reader left, nothing to report (an
        # OSError too: before the next clause)
        sys.stderr.close()
        return 0
    except OSError as e:
        from tinylm.disk_space import is_no_space, no_space

        if debug or not is_no_space(e):
            raise
        # a full disk a writer did not name itself (prepare's store, export's files, surgery's run)
        print(f"tinylm {args.command}: error: {no_space(e.filename or getattr(args, 'out', None) or '.')}",
              file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"tinylm {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
