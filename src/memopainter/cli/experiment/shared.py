"""What the experiment sub-commands share: their common arguments, error handling and progress messages."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from memopainter.cli.common import EXIT_FAILED, EXIT_USAGE, positive_int, print_error
from memopainter.config import ConfigError
from memopainter.core.checkpoint import CheckpointError
from memopainter.evaluation.report import ReportUnavailable, require_matplotlib
from memopainter.experiments.methods import METHODS, SharedSettings, method_config
from memopainter.networks.backbones import WeightsError


def input_arguments(parser: argparse.ArgumentParser, name: str, metavar: str, help: str) -> None:
    """The data, the output folder and the step budget of a training experiment."""
    parser.add_argument(name, type=Path, metavar=metavar, help=help)
    parser.add_argument("--out", type=Path, required=True, metavar="DIR", help="folder to write into")
    parser.add_argument("--steps", type=positive_int, required=True, metavar="N", help="steps per model")


def methods_argument(parser: argparse.ArgumentParser, default: list[str]) -> None:
    """--methods: which of METHODS to train, in this order."""
    parser.add_argument(
        "--methods",
        nargs="+",
        choices=list(METHODS),
        default=default,
        metavar="METHOD",
        help=f"which methods, in this order (default: {' '.join(default)})",
    )


def shared_training_arguments(parser: argparse.ArgumentParser, best_of_k: bool = True) -> None:
    """The settings every model of a training experiment shares; --top-k where it reports a best of k
    (else every test image is scored from its top-1 slot)."""
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--image-size", type=positive_int, default=64, metavar="S", help="(default 64)")
    parser.add_argument("--batch-size", type=positive_int, default=16, metavar="B", help="(default 16)")
    if best_of_k:
        parser.add_argument(
            "--top-k",
            type=positive_int,
            default=3,
            metavar="K",
            help="memory slots scored per test image, for best of k (default 3)",
        )
    else:
        parser.set_defaults(top_k=1)
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a config override for every method, as in train (repeatable)",
    )


def refused_output(out: Path, plots: bool = True) -> int | None:
    """EXIT_USAGE after a one-line error when --out is a file, or when `plots` and matplotlib is missing;
    else None. Checked before any work, so a bad --out costs no minutes of training."""
    if out.exists() and not out.is_dir():
        print_error(f"--out {out}: exists and is not a folder")
        return EXIT_USAGE
    try:
        if plots:
            require_matplotlib()
    except ReportUnavailable as error:
        print_error(str(error))
        return EXIT_USAGE
    return None


# Settings every method shares that have an option of their own: the report states them from the options.
FLAGGED = {
    "train.steps": "--steps",
    "train.seed": "--seed",
    "train.batch_size": "--batch-size",
    "train.device": "--device",
    "data.image_size": "--image-size",
}


def run_training_experiment(
    args: argparse.Namespace,
    methods: list[str],
    experiment: Callable[[SharedSettings], object],
    write: Callable[[object, Path, str], list[Path]],
) -> int:
    """Refuse bad settings before any training, run the experiment, write its files and print their paths."""
    refused = refused_output(args.out)
    if refused is not None:
        return refused
    twice = sorted({name for name in methods if methods.count(name) > 1})
    if twice:
        print_error(f"--methods lists {', '.join(twice)} more than once")
        return EXIT_USAGE
    keys = [override.split("=", 1)[0].strip() for override in args.overrides]
    key = next((key for key in keys if key in FLAGGED), None)
    if key is not None:
        option = "--milestones" if key == "train.steps" and hasattr(args, "milestones") else FLAGGED[key]
        print_error(f"--set {key}: use {option}, which the report shows (a --set would override it)")
        return EXIT_USAGE
    try:
        shared = _shared_settings(args)
        for name in methods:
            method_config(name, shared)  # every method's config is valid before minutes of training
    except ConfigError as error:
        print_error(str(error))
        return EXIT_USAGE
    try:
        result = experiment(shared)
    except (WeightsError, CheckpointError, ValueError, OSError) as error:
        print_error(str(error))
        return EXIT_FAILED
    for path in write(result, args.out, args.command_line):
        print(path)
    return 0


def _shared_settings(args: argparse.Namespace) -> SharedSettings:
    return SharedSettings(
        steps=args.steps,
        seed=args.seed,
        image_size=args.image_size,
        batch_size=args.batch_size,
        top_k=args.top_k,
        device=args.device,
        overrides=tuple(args.overrides),
    )


def measure_and_write(
    out: Path, measure: Callable[[], object], write: Callable[[object], list[Path]], plots: bool = False
) -> int:
    """Run an experiment on a trained model and print the files it wrote into `out`; a bad --out (or, when it
    `plots`, no matplotlib) is exit 2, a bad model or input exit 1."""
    refused = refused_output(out, plots)
    if refused is not None:
        return refused
    try:
        result = measure()
    except (CheckpointError, WeightsError, ConfigError, ValueError, OSError) as error:
        print_error(str(error))
        return EXIT_FAILED
    for path in write(result):
        print(path)
    return 0


def say(message: str) -> None:
    print(message, file=sys.stderr)
