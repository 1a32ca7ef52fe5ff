"""`memopainter memory`: what a model's memory holds, and what chosen images retrieve from it (Fig. 8)."""

from __future__ import annotations

import argparse
from pathlib import Path

from memopainter.cli.common import EXIT_FAILED, EXIT_USAGE, output_refusal, print_error
from memopainter.core.checkpoint import CheckpointError
from memopainter.core.model import load_memopainter, resolve_model_path
from memopainter.data.images import ImageLoadError, save_png
from memopainter.inference import Colorizer
from memopainter.inference.inspect import (
    QueryResult,
    contact_sheet,
    memory_stats,
    query_memory,
    slot_classes,
    slot_source,
)
from memopainter.networks.backbones import WeightsError


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `memory` command."""
    parser = subparsers.add_parser(
        "memory",
        help="print a model's memory statistics; draw its slots as a contact sheet",
        description="Print how many memory slots MODEL has, how many are written and their ages. With -o, "
        "draw every written slot as a color swatch (the palette, or the heaviest ab bins at a mid lightness) "
        "with the image that wrote it. With --query, print and draw the top-3 slots each image retrieves.",
        epilog="example: memopainter memory runs/first --query frame.png -o sheet.png",
    )
    parser.add_argument("model", type=Path, metavar="MODEL", help="a run folder or a checkpoint file")
    parser.add_argument("--query", nargs="+", type=Path, default=[], metavar="IMAGE", help="images to query")
    parser.add_argument("-o", "--out", type=Path, metavar="SHEET.png", help="write a contact sheet PNG")
    parser.add_argument(
        "--weights", type=Path, metavar="FILE", help="the backbone's weights file, if not found"
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Print the statistics (and queries), then write the sheet; the backbone is loaded only for --query."""
    if args.out is not None and args.out.suffix.lower() != ".png":
        print_error(f"-o {args.out}: the contact sheet is a PNG; name it SOMETHING.png")
        return EXIT_USAGE
    try:
        path = resolve_model_path(args.model)
        if args.query:
            colorizer = Colorizer.from_pretrained(path, weights=args.weights)
            model = colorizer.model
        else:
            model = load_memopainter(path)
        stats = memory_stats(model)
    except (CheckpointError, WeightsError, ValueError, OSError) as error:
        print_error(str(error))
        return EXIT_FAILED
    if args.out is not None and (refusal := output_refusal("-o", args.out, [path, *args.query])):
        print_error(refusal)
        return EXIT_USAGE
    print(
        f"{path}: {stats.size} memory slots, {stats.used} written ({100 * stats.used / stats.size:.0f}%), "
        f"feature {stats.feature}"
    )
    if stats.used:
        print(f"ages of written slots: min {stats.age_min}, median {stats.age_median:g}, max {stats.age_max}")
        classes = slot_classes(model)
        print("written slots per class: " + ", ".join(f"{name} {n}" for name, n in sorted(classes.items())))
    queries: list[QueryResult] = []
    failed = 0
    for image_path in args.query:
        try:
            queries += query_memory(colorizer, [image_path], [str(image_path)])
        except (ImageLoadError, ValueError) as error:
            print_error(str(error))
            failed += 1
    for query in queries:
        print(f"query {query.name}")
        for rank, (slot, score) in enumerate(zip(query.slots, query.scores, strict=True), start=1):
            print(f"  {rank}. slot {slot}  score {score:.3f}  {slot_source(model, slot)}")
    if args.out is not None:
        try:
            save_png(args.out, contact_sheet(model, str(path), queries))
        except OSError as error:
            print_error(f"{args.out}: cannot write the contact sheet ({error.strerror or error})")
            return EXIT_FAILED
        print(f"contact sheet written to {args.out}")
    return 1 if failed else 0
