"""`memopainter features`: print the color features the memory would store for each image."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from memopainter.cli.common import positive_int
from memopainter.color.features import describe_features
from memopainter.data.images import ImageLoadError, load_image


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `features` command."""
    parser = subparsers.add_parser(
        "features",
        help="print each image's dominant palette and main ab bins",
        description="Print the color features of images: the dominant palette (Color Thief's algorithm) "
        "and the heaviest bins of the soft-encoded 313-bin ab distribution.",
        epilog="example: memopainter features frame_001.png frame_002.png --json",
    )
    parser.add_argument("images", nargs="+", type=Path, metavar="IMAGE", help="image files to describe")
    parser.add_argument("--colors", type=positive_int, default=10, help="palette size (default 10)")
    parser.add_argument("--bins", type=positive_int, default=5, help="how many ab bins to list (default 5)")
    parser.add_argument("--json", action="store_true", help="one JSON object per line instead of text")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Describe every image; a file that fails is reported and skipped, and the exit status says so."""
    failed = 0
    for path in args.images:
        try:
            rgb, alpha = load_image(path)
        except ImageLoadError as error:
            print(f"error: {error}", file=sys.stderr)
            failed += 1
            continue
        info = describe_features(rgb, alpha, colors=args.colors, bins=args.bins)
        if args.json:
            print(json.dumps({"path": str(path), **info}))
        else:
            print(f"{path}")
            print(f"  palette: {' '.join(info['palette'])}")
            for entry in info["ab_bins"]:
                ab = f"({entry['a']:+4.0f}, {entry['b']:+4.0f})"
                print(f"  bin {entry['bin']:3d}  ab={ab}  mass {entry['mass']:.3f}")
    if failed:
        print(f"{failed} of {len(args.images)} images failed", file=sys.stderr)
    return 1 if failed else 0
