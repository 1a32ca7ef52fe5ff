"""`memopainter demo`: the newcomer's first run, from nothing to a report of colorized held-out frames."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from memopainter.cli.common import EXIT_FAILED, print_error
from memopainter.config import INPUTS, ConfigError
from memopainter.core.checkpoint import CheckpointError
from memopainter.data.builders.common import BuildError
from memopainter.demo import run_demo
from memopainter.evaluation.report import ReportUnavailable
from memopainter.networks.backbones import WeightsError


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `demo` command."""
    parser = subparsers.add_parser(
        "demo",
        help="build Kenney's sprites, train few-shot, colorize held-out frames and write a report",
        description="The first run for newcomers, on CPU in about five minutes: builds Kenney's CC0 sprites "
        "(pip download of the arcade wheel), splits them 3-shot, trains a small model, colorizes the "
        "held-out frames with top-3 alternatives, evaluates them against the originals and writes an HTML "
        "report. A second run reuses the data and the model.",
        epilog="example: memopainter demo --out demo-output",
    )
    parser.add_argument(
        "--out", type=Path, default=Path("demo-output"), help="folder for everything (default ./demo-output)"
    )
    parser.add_argument("--data", type=Path, help="class folders of color images to use instead of Kenney's")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a setting")
    parser.add_argument(
        "--input",
        choices=INPUTS,
        default="gray",
        help="gray (default) or lineart: train on the frames' extracted line art and color the held-out "
        "frames from their lines (into OUT/run-lineart and OUT/report-lineart)",
    )
    parser.set_defaults(run=run)


def _stderr(message: str) -> None:
    print(message, file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    """Run the demo; print the report's path and the headline figures."""
    try:
        result = run_demo(args.out, args.data, args.set, say=_stderr, input_mode=args.input)
    except (
        ConfigError,
        BuildError,
        WeightsError,
        CheckpointError,
        ReportUnavailable,
        ValueError,
        OSError,
    ) as error:
        print_error(str(error))
        return EXIT_FAILED
    summary = result.summary
    print(
        f"{summary['images']} held-out frames: mean CIEDE2000 {summary['delta_e2000']:.2f} from the top-1 "
        f"memory slot, {summary['delta_e2000_best_of_k']:.2f} best of 3 (lower is better)"
    )
    if summary.get("retrieval_top1_accuracy") is not None:
        print(
            f"top-1 slot written by a frame of the same character: {summary['retrieval_top1_accuracy']:.0%}"
        )
    print(f"report: {result.report.resolve()}")
    return 0
