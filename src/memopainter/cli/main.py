"""The `memopainter` command: argparse subcommands that parse, validate and call the library."""

from __future__ import annotations

import argparse
import sys
import warnings

from memopainter import __version__
from memopainter.cli import (
    colorize,
    data,
    demo,
    evaluate,
    experiment,
    features,
    memory,
    remember,
    serve,
    train,
    weights,
)

# Each command module adds its sub-parser and sets `run` (args -> exit status) as a default.
COMMANDS = (colorize, data, demo, evaluate, experiment, features, memory, remember, serve, train, weights)


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with one sub-parser per command."""
    parser = argparse.ArgumentParser(
        prog="memopainter",
        description="Few-shot colorization with memory-augmented networks.",
    )
    parser.add_argument("--version", action="version", version=f"memopainter {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in COMMANDS:
        command.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; returns the exit status."""
    warnings.showwarning = _show_warning
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        return args.run(args)
    except KeyboardInterrupt:  # every file is written whole or not at all: nothing to clean up or report
        print(
            "interrupted (Ctrl-C); what was written is whole, and a run continues with train --resume",
            file=sys.stderr,
        )
        return 130  # the shell's status for a process ended by SIGINT


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings as the one-line `warning: ...` the commands print, not Python's two-line form."""
    print(f"warning: {message}", file=sys.stderr if file is None else file)


if __name__ == "__main__":
    sys.exit(main())
