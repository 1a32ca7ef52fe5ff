"""`memopainter experiment`: the paper's experiments on our data, each writing a table, JSON and a plot."""

from __future__ import annotations

import argparse
import shlex
from collections.abc import Sequence

from memopainter.cli.experiment import analysis, retrieval, training


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `experiment` command and its sub-commands."""
    parser = subparsers.add_parser(
        "experiment",
        help="reproduce the paper's experiments on a dataset",
        description="Reproduce an experiment of the paper; each writes a markdown table, JSON and a plot.",
    )
    experiments = parser.add_subparsers(
        dest="experiment", metavar="EXPERIMENT", required=True, action=_RecordingSubParsers
    )
    for group in (retrieval, training, analysis):
        group.register(experiments)


class _RecordingSubParsers(argparse._SubParsersAction):
    """The experiments' sub-parsers, which also keep the words they were given as `args.command_line`.

    Here, not in main(): these are exactly the words after `experiment` however the parser was called (the
    console script, main(argv), or a test's own parser), and argv is read once, not rebuilt flag by flag.
    """

    def __call__(self, parser, namespace, values, option_string=None):
        namespace.command_line = recorded_command(["experiment", *values])
        super().__call__(parser, namespace, values, option_string)


def recorded_command(argv: Sequence[str]) -> str:
    """The command written into each results table: `memopainter` and the arguments as typed, shell-quoted."""
    return shlex.join(["memopainter", *argv])
