"""`memopainter evaluate`: colorize a folder of color images from their lightness and score the results."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from memopainter.cli.common import (
    EXIT_FAILED,
    EXIT_USAGE,
    Progress,
    add_model_options,
    add_upsample_option,
    load_checked_model,
    output_refusal,
    positive_int,
    print_error,
)
from memopainter.evaluation.evaluate import evaluate, list_test_images
from memopainter.evaluation.lpips import lpips_status
from memopainter.evaluation.report import (
    ReportImages,
    ReportUnavailable,
    check_report_dir,
    require_matplotlib,
    write_report,
)
from memopainter.evaluation.scores import PSNR_CAP
from memopainter.files import write_json
from memopainter.inference import Colorizer


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `evaluate` command."""
    parser = subparsers.add_parser(
        "evaluate",
        help="score a model against color ground truth",
        description="Evaluate MODEL on TEST_DIR, a folder of color images (top-level sub-folders are "
        "classes, optional). Each image is colorized from its lightness exactly as `colorize` does and "
        "compared with its original at full resolution over its opaque pixels (alpha >= 0.5): mean "
        "CIEDE2000 (primary, lower is better; with --top-k K also the best of the K alternatives, equal "
        f"to the top-1 value when K = 1), PSNR (capped at {PSNR_CAP:g} dB, so identical images average to "
        "a number), SSIM (null for images under 11 px a side), the colorfulness of output and truth, and "
        "LPIPS where its weights are found (both images composited onto white; images under 31 px a side "
        "upscaled). When the model was trained on classes and TEST_DIR has class folders, "
        "retrieval_top1_accuracy is the share of test images whose top-1 memory slot was written by an "
        "image of their class. The summary is printed as JSON; --json writes it with per-image results. "
        "Unreadable images are reported and skipped. Exit status: 0 all evaluated, 1 some image failed, "
        "TEST_DIR is missing or holds no images, or the model could not be loaded, 2 refused before any "
        "work.",
        epilog="example: memopainter evaluate runs/first data/test --top-k 3 --json eval.json --report eval/",
    )
    parser.add_argument("model", type=Path, metavar="MODEL", help="a run folder or a checkpoint file")
    parser.add_argument("test_dir", type=Path, metavar="TEST_DIR", help="folder of color ground-truth images")
    parser.add_argument(
        "--json", type=Path, metavar="FILE", help="write the full result with per-image scores"
    )
    parser.add_argument(
        "--report", type=Path, metavar="DIR", help="write an HTML report into DIR (new or empty folder)"
    )
    parser.add_argument(
        "--top-k", type=positive_int, default=1, metavar="K", help="also score the 2nd..Kth slots' colorings"
    )
    add_model_options(parser)
    add_upsample_option(parser)
    parser.add_argument("--lpips-alexnet", type=Path, metavar="FILE", help="torchvision's AlexNet weights")
    parser.add_argument("--lpips-heads", type=Path, metavar="FILE", help="LPIPS v0.1 alex linear heads")
    parser.add_argument(
        "--batch-size",
        type=positive_int,
        default=8,
        metavar="B",
        help="images per network batch (default 8)",
    )
    _add_input_options(parser)
    parser.set_defaults(run=run)


def _add_input_options(parser: argparse.ArgumentParser) -> None:
    """What each test image is colored from: a memory slot or its own feature, alone or in a sequence,
    gray or line art."""
    parser.add_argument(
        "--oracle",
        action="store_true",
        help="condition each image on its own true color feature instead of a memory slot: what a perfect "
        "retrieval would give (memory models, top-1 only)",
    )
    parser.add_argument(
        "--sequences",
        action="store_true",
        help="colorize the animations among the test images (numbered frames of one name in one folder, "
        "e.g. walk0..walk7) as sequences, their frames sharing memory slots across a shot, and add flicker "
        "(mean CIEDE2000 between consecutive outputs where the truth does not change) and top-1 slot "
        "switches per 100 frames to the summary",
    )
    parser.add_argument(
        "--lineart",
        type=Path,
        metavar="LINES_DIR",
        help="a line-art model: colorize each test image from the drawn line art under the same relative "
        "path in LINES_DIR (as `data split --lineart` writes it), scored against the test image; test "
        "images without one, and all without this option, are colorized from their extracted lines",
    )


def run(args: argparse.Namespace) -> int:
    """Refuse what cannot work before loading anything, evaluate, then write the JSON and the report."""
    if args.report is not None:
        try:
            check_report_dir(args.report)
            require_matplotlib()
        except (ValueError, ReportUnavailable) as error:
            print_error(f"--report: {error}")
            return EXIT_USAGE
    if args.lpips_alexnet is not None or args.lpips_heads is not None:
        _, unavailable = lpips_status(args.lpips_alexnet, args.lpips_heads)  # weights named: they must work
        if unavailable is not None:
            print_error(f"--lpips-alexnet / --lpips-heads: {unavailable}")
            return EXIT_USAGE
    try:
        files = list_test_images(args.test_dir)
    except (OSError, ValueError) as error:
        print_error(str(error))
        return EXIT_FAILED
    colorizer, status = load_checked_model(args.model, args.device, args.weights, args.top_k, None)
    if colorizer is None:
        return status
    refusal = _refusal(args, colorizer) or _output_refusal(args, colorizer)
    if refusal is not None:
        print_error(refusal)
        return EXIT_USAGE

    images = ReportImages(args.report) if args.report is not None else None
    with Progress(len(files)) as bar:
        result = evaluate(
            colorizer,
            args.test_dir,
            args.top_k,
            lpips_alexnet=args.lpips_alexnet,
            lpips_heads=args.lpips_heads,
            batch_size=args.batch_size,
            oracle=args.oracle,
            upsample=args.upsample,
            sequences=args.sequences,
            lineart_dir=args.lineart,
            on_image=images.add if images is not None else None,
            on_failure=lambda failure: bar.write(f"error: {args.test_dir / failure.path}: {failure.error}"),
            progress=bar.update,
        )
    if args.json is not None:
        write_json(args.json, result.to_json())
    if args.report is not None:
        index = write_report(args.report, result, colorizer, images)
        print(f"report: {index}", file=sys.stderr)
    print(json.dumps(result.summary(), indent=2, allow_nan=False))
    return EXIT_FAILED if result.failures else 0


def _output_refusal(args: argparse.Namespace, colorizer: Colorizer) -> str | None:
    """Why --json or --report cannot be written where asked (one line), or None: before any work."""
    inputs = (colorizer.path, args.test_dir, args.lineart)
    if args.json is not None and args.report is not None:
        if args.json.resolve().is_relative_to(args.report.resolve()):
            return (
                f"--json {args.json}: is inside --report {args.report}, which is replaced whole when written"
            )
    if args.json is not None and (refusal := output_refusal("--json", args.json, inputs)):
        return refusal
    if args.report is None:
        return None
    return output_refusal("--report", args.report, inputs, folder=True)


def _refusal(args: argparse.Namespace, colorizer: Colorizer) -> str | None:
    """Why the options cannot work with this model (one line), or None."""
    if args.oracle and (not colorizer.has_memory or args.top_k != 1):
        return f"--oracle: {args.model} needs a memory (not --no-memory) and --top-k 1"
    if args.oracle and args.sequences:
        return "--oracle and --sequences exclude each other: the oracle retrieves nothing to smooth"
    if args.lineart is not None and not (colorizer.lineart and args.lineart.is_dir()):
        problem = "not a folder" if colorizer.lineart else f"{args.model} was not trained on line art"
        return f"--lineart {args.lineart}: {problem}"
    return None
