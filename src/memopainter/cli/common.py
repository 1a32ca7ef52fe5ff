"""Small pieces the command modules share: argument types, the one-line error format, model loading."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from memopainter.core.checkpoint import CheckpointError
from memopainter.inference import Colorizer
from memopainter.inference.upsample import DEFAULT_UPSAMPLE, UPSAMPLERS
from memopainter.networks.backbones import WeightsError


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def positive_float(text: str) -> float:
    """argparse type: a number > 0."""
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def add_model_options(parser: argparse.ArgumentParser) -> None:
    """--device and --weights, shared by the commands that run a trained model."""
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="where the networks run")
    parser.add_argument(
        "--weights", type=Path, metavar="FILE", help="the backbone's weights file, if not found"
    )


def add_upsample_option(parser: argparse.ArgumentParser) -> None:
    """--upsample, shared by the commands that write full-size colorings."""
    parser.add_argument(
        "--upsample",
        choices=UPSAMPLERS,
        default=DEFAULT_UPSAMPLE,
        help="how colors reach full resolution: bilinear; guided by the input's own lines; or region, guided "
        f"and then one color per flat region of the drawing (default {DEFAULT_UPSAMPLE})",
    )


def print_error(message: str) -> None:
    """Print a one-line error on stderr."""
    print(f"error: {message}", file=sys.stderr)


EXIT_FAILED = 1  # some input failed, or the model or the data could not be loaded
EXIT_USAGE = 2  # refused before any work


def load_checked_model(
    path: Path, device: str, weights: Path | None, top_k: int, palette: torch.Tensor | None
) -> tuple[Colorizer | None, int]:
    """Load MODEL and check the request: (colorizer, 0), or (None, exit status) after a one-line error."""
    try:
        colorizer = Colorizer.from_pretrained(path, device=device, weights=weights)
    except (CheckpointError, WeightsError, ValueError, OSError) as error:
        print_error(str(error))
        return None, EXIT_FAILED
    try:
        colorizer.check_request(top_k, palette)
    except ValueError as error:
        print_error(str(error))
        return None, EXIT_USAGE
    return colorizer, 0
