"""`memopainter demo`: the newcomer's first run on the built-in sample image."""

from __future__ import annotations

import argparse
from importlib import resources

from memopainter.cli import features

SAMPLE = "sample_adventurer.png"  # Kenney's CC0 "female adventurer", from the arcade package's assets


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `demo` command."""
    parser = subparsers.add_parser(
        "demo",
        help="run the built-in demo on the bundled sample sprite",
        description="Describe the bundled sample sprite's color features (palette and ab bins), "
        "the values MemoPainter's memory stores for an image.",
        epilog="example: memopainter demo",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Print the sample's color features."""
    with resources.as_file(resources.files("memopainter.assets").joinpath(SAMPLE)) as path:
        return features.run(argparse.Namespace(images=[path], colors=10, bins=5, json=False))
