"""`memopainter remember`: teach a trained model new colored references, one-shot, without retraining."""

from __future__ import annotations

import argparse
from pathlib import Path

from memopainter.cli.common import add_model_options, print_error
from memopainter.core.checkpoint import CheckpointError
from memopainter.data.images import ImageLoadError, load_image
from memopainter.inference import Colorizer
from memopainter.inference.remember import WROTE, remember
from memopainter.networks.backbones import WeightsError

CHECKPOINT_SUFFIX = ".safetensors"


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `remember` command."""
    parser = subparsers.add_parser(
        "remember",
        help="write colored reference images into a model's memory (no retraining)",
        description="Teach MODEL new colored references without retraining: each image's query key (from "
        "its gray version) and color feature go through the memory update of the paper (eqs. 8, 9). A "
        "reference whose colors already match its top-1 slot refreshes that slot's key instead of taking a "
        "new slot; each line of output says which happened. The result is saved as a new checkpoint; MODEL "
        "is only replaced when --out names its file. Nothing is written if any image fails to load.",
        epilog="example: memopainter remember runs/first new_hero.png --out runs/first/hero.safetensors "
        "--class hero",
    )
    parser.add_argument("model", type=Path, metavar="MODEL", help="a run folder or a checkpoint file")
    parser.add_argument("images", nargs="+", type=Path, metavar="IMAGE", help="colored reference images")
    parser.add_argument(
        "--out", type=Path, required=True, metavar="NEW_MODEL", help="checkpoint file to write (.safetensors)"
    )
    parser.add_argument("--class", dest="class_name", metavar="NAME", help="the references' class")
    add_model_options(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Load everything first, so a bad image leaves no half-taught checkpoint behind; then teach and save."""
    if args.out.is_dir() or args.out.suffix != CHECKPOINT_SUFFIX:
        print_error(f"--out {args.out}: name the new checkpoint file, ending in {CHECKPOINT_SUFFIX}")
        return 2
    images, failed = [], 0
    for path in args.images:
        try:
            images.append(load_image(path))
        except ImageLoadError as error:
            print_error(str(error))
            failed += 1
    if failed:
        print_error(f"{failed} of {len(args.images)} images failed to load; nothing was written")
        return 1
    try:
        colorizer = Colorizer.from_pretrained(args.model, device=args.device, weights=args.weights)
        results = remember(colorizer, images, [str(p) for p in args.images], args.class_name)
        colorizer.model.save(args.out)
    except (CheckpointError, WeightsError, ValueError, OSError) as error:
        print_error(str(error))
        return 1
    label = f" (class {args.class_name})" if args.class_name else ""
    for result in results:
        if result.action == WROTE:
            replaced = f", which held {result.replaced}" if result.replaced else ""
            print(f"{result.source}{label}: wrote slot {result.slot}{replaced}")
        else:
            print(
                f"{result.source}{label}: refreshed slot {result.slot} (its top-1 slot already held these "
                "colors: the key moved toward this image, the slot's colors and source were kept)"
            )
    memory = colorizer.model.memory
    print(f"saved {args.out} ({memory.num_filled} of {memory.size} slots written)")
    return 0
