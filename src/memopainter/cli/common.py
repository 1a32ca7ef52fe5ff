"""Small pieces the command modules share: argument types, the one-line error format, model loading."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from pathlib import Path

import torch
from tqdm import tqdm

from memopainter.core.checkpoint import CheckpointError
from memopainter.files import probe_writable
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


def output_refusal(
    option: str, path: Path, inputs: Iterable[Path | None], folder: bool = False
) -> str | None:
    """Why a command may not write its output (a file, or with `folder` a folder) at `path`, or None.

    Checked before any work: an output is never one of the `inputs` (files or folders; None is skipped)
    nor inside one (an output among the test images would be read as one by the next run), a file output
    is not a folder, and the folder it goes in can be made and written (tried, not guessed; an output
    folder is itself made only when its work is done).
    """
    if not folder and path.is_dir():
        return f"{option} {path}: is a folder; name the file to write"
    target = path.resolve()
    for source in filter(None, inputs):
        source = source.resolve()
        if target == source or (source.is_dir() and target.is_relative_to(source)):
            return f"{option} {path}: is {'' if target == source else 'inside '}the input {source}"
    parent = path.parent  # where the file, or the folder's hidden staging copy, is written first
    existing = next(p for p in (parent, *parent.parents) if p.exists() or p == Path(p.anchor))
    if existing.exists() and not existing.is_dir():
        return f"{option} {path}: {existing} is a file, not a folder"
    try:
        probe_writable(parent)
    except OSError as error:
        return f"{option} {path}: cannot write there ({error.strerror or error})"
    return None


class Progress:
    """Files done as a tqdm bar on a terminal (messages written through it, which they would tear otherwise),
    else plain lines on stderr."""

    def __init__(self, total: int) -> None:
        tty = sys.stderr.isatty()
        self._bar = tqdm(total=total, unit="image", dynamic_ncols=True) if tty else None

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.close()

    def write(self, line: str) -> None:
        if self._bar is None:
            print(line, file=sys.stderr)
        else:
            self._bar.write(line, file=sys.stderr)

    def update(self, files: int) -> None:
        if self._bar is not None:
            self._bar.update(files)
