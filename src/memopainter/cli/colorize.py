"""`memopainter colorize`: colorize image files, folders and globs with a trained model (paper Figs. 4, 5).

The arguments, the progress bar and the exit status; planning the outputs and writing them is the library's
(`memopainter.inference.batch`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from memopainter.cli.common import (
    EXIT_FAILED,
    EXIT_USAGE,
    Progress,
    add_model_options,
    add_upsample_option,
    load_checked_model,
    positive_int,
    print_error,
)
from memopainter.inference import parse_palette
from memopainter.inference.batch import check_outputs, collect_jobs, colorize_jobs, unfinished

_DESCRIPTION = (
    "Colorize images with a trained model. Only the lightness of each input is used, so "
    "color frames are colorized afresh. Each output is a PNG of the input's size with its alpha channel; "
    "outputs mirror the inputs' paths under OUT_DIR (a folder input: paths relative to it; a glob: "
    "relative to its folder part; a file: its name). With --top-k K, NAME.k2.png ... NAME.kK.png are the "
    "colorings from the 2nd to Kth memory slots. An animated GIF, WebP or PNG is colorized as one "
    "sequence, so its characters keep their colors from frame to frame, and written as an animation of "
    "the same format, frame timing, loop count and transparency (walk.gif -> OUT_DIR/walk.gif, "
    "walk.k2.gif, ...). With --sequence each folder input is such a sequence too, its frames in natural "
    "order (frame2 before frame10), written as PNG frames of the same names. A file or sequence that "
    "fails is written not at all. OUT_DIR may not be an input folder, nor lie inside one that is "
    "searched recursively; existing outputs are refused unless --overwrite or --skip-existing. "
    "Exit status: 0 all colorized, 1 some input failed or the model could not be loaded, 2 refused "
    "before any work."
)
_EXAMPLES = (
    "examples:\n"
    "  memopainter colorize runs/first frames/ 'extra/*.png' -o colored/ --top-k 3\n"
    "  memopainter colorize runs/first walk.gif -o colored/            # colored/walk.gif, animated\n"
    "  memopainter colorize runs/first --sequence shot1/ -o colored/   # colored/<each frame>.png"
)


class _ExamplesFormatter(argparse.HelpFormatter):
    """argparse's help, but text that has line breaks of its own (the examples) keeps them."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if "\n" in text:
            return "".join(indent + line for line in text.splitlines(keepends=True))
        return super()._fill_text(text, width, indent)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `colorize` command."""
    parser = subparsers.add_parser(
        "colorize",
        help="colorize images with a trained model",
        description=_DESCRIPTION,
        epilog=_EXAMPLES,
        formatter_class=_ExamplesFormatter,
    )
    parser.add_argument("model", type=Path, metavar="MODEL", help="a run folder or a checkpoint file")
    parser.add_argument(
        "inputs", nargs="+", metavar="INPUT", help="image files, folders or quoted globs (sorted order)"
    )
    parser.add_argument("-o", "--out", type=Path, required=True, metavar="OUT_DIR", help="output folder")
    parser.add_argument(
        "--top-k", type=positive_int, default=1, metavar="K", help="also write the 2nd..Kth slots' colorings"
    )
    parser.add_argument(
        "--palette",
        metavar="COLORS",
        help='condition on these colors instead of the memory, e.g. "#d02030,#f0c020" (1 to 10 colors)',
    )
    parser.add_argument("--recursive", action="store_true", help="search folder inputs' sub-folders too")
    parser.add_argument(
        "--sequence",
        action="store_true",
        help="colorize each folder input as one ordered sequence of frames (with --recursive, each folder "
        "holding images is one), so that its characters keep their colors from frame to frame",
    )
    existing = parser.add_mutually_exclusive_group()
    existing.add_argument("--overwrite", action="store_true", help="replace outputs that already exist")
    existing.add_argument(
        "--skip-existing", action="store_true", help="skip inputs whose outputs all exist already"
    )
    parser.add_argument(
        "--batch-size",
        type=positive_int,
        default=8,
        metavar="B",
        help="images per network batch (default 8)",
    )
    add_model_options(parser)
    add_upsample_option(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Plan every output, refuse clobbering before any work, then colorize batch by batch."""
    try:
        palette = parse_palette(args.palette) if args.palette is not None else None
    except ValueError as error:
        print_error(f"--palette: {error}")
        return EXIT_USAGE
    jobs, roots, problems = collect_jobs(args.inputs, args.recursive, args.sequence)
    for problem in problems:
        print_error(problem)
    refusal = check_outputs(jobs, roots, args.out, args.top_k, args.overwrite or args.skip_existing)
    if refusal is not None:
        print_error(refusal)
        return EXIT_USAGE
    skipped = 0
    if args.skip_existing:
        todo = unfinished(jobs, args.out, args.top_k)
        skipped, jobs = len(jobs) - len(todo), todo
    if not jobs and not skipped and not problems:
        print_error("no images found in the inputs")
        return EXIT_FAILED
    colorized, failed = 0, len(problems)
    if jobs:
        colorizer, status = load_checked_model(args.model, args.device, args.weights, args.top_k, palette)
        if colorizer is None:
            return status
        with Progress(len(jobs)) as bar:
            colorized, batch_failed = colorize_jobs(
                colorizer,
                jobs,
                args.out,
                args.top_k,
                palette,
                args.batch_size,
                args.upsample,
                bar.write,
                bar.update,
            )
        failed += batch_failed
    summary = f"{colorized} colorized, {failed} failed"
    print(summary + (f", {skipped} skipped (outputs exist)" if skipped else ""))
    return EXIT_FAILED if failed else 0
