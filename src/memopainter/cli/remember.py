"""`memopainter remember`: teach a trained model new colored references, one-shot, without retraining."""

from __future__ import annotations

import argparse
from pathlib import Path

from memopainter.cli.common import EXIT_FAILED, EXIT_USAGE, add_model_options, print_error
from memopainter.core.checkpoint import CheckpointError
from memopainter.core.model import CHECKPOINT_FILE, resolve_model_path
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
        "is only replaced when --out names its file, another existing file only with --overwrite, and a "
        f"run's resumable {CHECKPOINT_FILE} never. Nothing is written if any image fails to load.",
        epilog="example: memopainter remember runs/first new_hero.png --out runs/first/hero.safetensors "
        "--class hero",
    )
    parser.add_argument("model", type=Path, metavar="MODEL", help="a run folder or a checkpoint file")
    parser.add_argument("images", nargs="+", type=Path, metavar="IMAGE", help="colored reference images")
    parser.add_argument(
        "--out", type=Path, required=True, metavar="NEW_MODEL", help="checkpoint file to write (.safetensors)"
    )
    parser.add_argument("--class", dest="class_name", metavar="NAME", help="the references' class")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out other than MODEL")
    add_model_options(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Load everything first, so a bad image leaves no half-taught checkpoint behind; then teach and save."""
    refusal = _out_refusal(args)
    if refusal is not None:
        print_error(refusal)
        return EXIT_USAGE
    images, failed = [], 0
    for path in args.images:
        try:
            images.append(load_image(path))
        except ImageLoadError as error:
            print_error(str(error))
            failed += 1
    if failed:
        print_error(f"{failed} of {len(args.images)} images failed to load; nothing was written")
        return EXIT_FAILED
    try:
        colorizer = Colorizer.from_pretrained(args.model, device=args.device, weights=args.weights)
        results = remember(colorizer, images, [str(p) for p in args.images], args.class_name)
        colorizer.model.save(args.out)
    except (CheckpointError, WeightsError, ValueError, OSError) as error:
        print_error(str(error))
        return EXIT_FAILED
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


def _out_refusal(args: argparse.Namespace) -> str | None:
    """Why --out may not be written (one line), or None: before any image is read."""
    if args.out.is_dir() or args.out.suffix != CHECKPOINT_SUFFIX:
        return f"--out {args.out}: name the new checkpoint file, ending in {CHECKPOINT_SUFFIX}"
    if args.out.name == CHECKPOINT_FILE:
        return (
            f"--out {args.out}: a run's resumable checkpoint is never replaced (it holds the training state)"
        )
    if not args.out.exists() or args.overwrite:
        return None
    try:
        model_file = resolve_model_path(args.model)
    except CheckpointError:
        model_file = None  # loading MODEL reports its own problem
    if model_file is not None and model_file.resolve() == args.out.resolve():
        return None
    return f"--out {args.out}: exists; pass --overwrite to replace it"
