"""`memopainter data kenney | wesnoth | emoji | openmoji | folder | split`: class-folder data sets, splits."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

from memopainter.cli.common import EXIT_FAILED, positive_int, print_error
from memopainter.data.builders import (
    BuildError,
    Manifest,
    build_emoji,
    build_folder,
    build_kenney,
    build_split,
    build_wesnoth,
)
from memopainter.data.builders.openmoji import DEFAULT_SIZE, build_openmoji


def _log(message: str) -> None:
    print(message, file=sys.stderr)


def _report(action: str, dest: Path, build: Callable[[], Manifest], skip_bad: bool = True) -> int:
    """Run one builder; print its summary, or its error as one line on stderr.

    Unreadable images are listed one line each; unless `skip_bad`, they make the exit status 1 (the dataset
    is still written without them). kenney, wesnoth and emoji keep the default: their sources are pinned
    upstream packages, so a member left out there is no input of the user's that failed.
    """
    start = time.perf_counter()
    try:
        body = build()
    except BuildError as err:
        print_error(str(err))
        return EXIT_FAILED
    except OSError as err:  # e.g. DEST under a file, read-only or a full disk: nothing was put in place
        problem = f"{err.filename or dest}: {err.strerror or err}"
        print_error(problem)
        return EXIT_FAILED
    seconds = time.perf_counter() - start
    for entry in body.get("unreadable", []):
        print(f"skipped unreadable {entry['path']}: {entry['problem']}", file=sys.stderr)
    if action == "split":
        print(
            f"split: {body['num_train']} train + {body['num_test']} test images of {body['num_classes']} "
            f"classes (shots {body['protocol']['shots']}, seed {body['protocol']['seed']}) to {dest} "
            f"in {seconds:.1f} s"
        )
    else:
        classes = f" in {body['num_classes']} classes" if body["num_classes"] else " (flat, no classes)"
        if body["num_classes"] and body.get("unlabelled_images"):
            classes += f" and {body['unlabelled_images']} at the top level without a class"
        print(f"{action}: wrote {body['num_images']} images{classes} to {dest} in {seconds:.1f} s")
    skipped = len(body.get("unreadable", []))
    if skipped and not skip_bad:
        count = f"{skipped} unreadable image{'' if skipped == 1 else 's'}"
        print_error(f"{count} left out (listed above); pass --skip-bad to accept that with exit status 0")
        return EXIT_FAILED
    return 0


def run_kenney(args: argparse.Namespace) -> int:
    """Build the Kenney sprite dataset."""
    return _report("kenney", args.dest, lambda: build_kenney(args.dest, args.source, args.force, log=_log))


def run_wesnoth(args: argparse.Namespace) -> int:
    """Build the Wesnoth unit sprite dataset."""
    return _report(
        "wesnoth",
        args.dest,
        lambda: build_wesnoth(
            args.dest,
            args.source,
            min_frames=args.min_frames,
            max_units=args.max_units,
            seed=args.seed,
            force=args.force,
            log=_log,
            progress=sys.stderr.isatty(),
        ),
    )


def run_emoji(args: argparse.Namespace) -> int:
    """Build the skin-tone emoji dataset."""
    return _report("emoji", args.dest, lambda: build_emoji(args.dest, args.source, args.force, log=_log))


def run_openmoji(args: argparse.Namespace) -> int:
    """Render the OpenMoji skin-tone dataset, in color and line art."""
    return _report(
        "openmoji",
        args.dest,
        lambda: build_openmoji(
            args.dest,
            args.source,
            size=args.size,
            force=args.force,
            max_classes=args.max_classes,
            log=_log,
            progress=sys.stderr.isatty(),
        ),
    )


def run_folder(args: argparse.Namespace) -> int:
    """Normalise a folder of images into a dataset."""
    return _report("folder", args.dest, lambda: build_folder(args.src, args.dest, args.force), args.skip_bad)


def run_split(args: argparse.Namespace) -> int:
    """Write a few-shot split of a class-folder dataset."""
    return _report(
        "split",
        args.dest,
        lambda: build_split(
            args.src,
            args.dest,
            args.shots,
            args.ways,
            args.test_per_class,
            args.seed,
            args.force,
            args.lineart,
        ),
        args.skip_bad,
    )


FORCE_HELP = "replace an existing non-empty DEST"
SKIP_BAD_HELP = "exit 0 when unreadable images were left out (still listed); without it, exit 1"


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `data` command and its kenney, wesnoth, emoji, openmoji, folder and split actions."""
    parser = subparsers.add_parser(
        "data",
        help="build datasets (Kenney, Wesnoth, emoji, OpenMoji, any folder) and few-shot splits",
        description="Build datasets as a folder of PNGs, one sub-folder per class, plus dataset.json. "
        "DEST is written atomically; an existing non-empty DEST is refused unless --force. folder and split "
        "leave unreadable images out, list them, and exit 1 unless --skip-bad.",
    )
    actions = parser.add_subparsers(dest="data_action", metavar="ACTION", required=True)
    _register_kenney(actions)
    _register_wesnoth(actions)
    _register_emoji(actions)
    _register_openmoji(actions)
    _register_folder(actions)
    _register_split(actions)


def _register_kenney(actions: argparse._SubParsersAction) -> None:
    kenney = actions.add_parser(
        "kenney",
        help="Kenney's CC0 sprites from the arcade 3.3.3 wheel (pip download, cached)",
        epilog="example: memopainter data kenney data/kenney",
    )
    kenney.add_argument("dest", type=Path, metavar="DEST", help="dataset folder to write")
    kenney.add_argument(
        "--source", type=Path, metavar="WHEEL_OR_DIR", help="the arcade 3.3.3 wheel or its extracted folder"
    )
    kenney.add_argument("--force", action="store_true", help=FORCE_HELP)
    kenney.set_defaults(run=run_kenney)


def _register_wesnoth(actions: argparse._SubParsersAction) -> None:
    wesnoth = actions.add_parser(
        "wesnoth",
        help="Battle for Wesnoth's GPL unit sprites, one class per unit (apt-get download, cached)",
        epilog="example: memopainter data wesnoth data/wesnoth --max-units 40",
    )
    wesnoth.add_argument("dest", type=Path, metavar="DEST", help="dataset folder to write")
    wesnoth.add_argument(
        "--source",
        type=Path,
        metavar="DIR_OR_DEB",
        help="wesnoth-1.16-data: its .deb, an extracted or installed root (e.g. /), or its units folder",
    )
    wesnoth.add_argument(
        "--min-frames",
        type=positive_int,
        default=8,
        metavar="N",
        help="skip units with fewer sprites (default 8)",
    )
    wesnoth.add_argument(
        "--max-units", type=positive_int, default=None, metavar="N", help="keep N units, drawn with --seed"
    )
    wesnoth.add_argument("--seed", type=int, default=0, help="seed of the --max-units draw (default 0)")
    wesnoth.add_argument("--force", action="store_true", help=FORCE_HELP)
    wesnoth.set_defaults(run=run_wesnoth)


def _register_emoji(actions: argparse._SubParsersAction) -> None:
    emoji = actions.add_parser(
        "emoji",
        help="Google's Apache-2.0 Noto Emoji in six skin tones, one class per tone (npm pack, cached)",
        epilog="example: memopainter data emoji data/emoji",
    )
    emoji.add_argument("dest", type=Path, metavar="DEST", help="dataset folder to write")
    emoji.add_argument(
        "--source",
        type=Path,
        metavar="FILE_OR_DIR",
        help="the emoji-datasource-google 16.0.0 tarball (.tgz) or its extracted folder",
    )
    emoji.add_argument("--force", action="store_true", help=FORCE_HELP)
    emoji.set_defaults(run=run_emoji)


def _register_openmoji(actions: argparse._SubParsersAction) -> None:
    openmoji = actions.add_parser(
        "openmoji",
        help="OpenMoji's CC BY-SA 4.0 emoji in six skin tones rendered from SVG, one class per emoji, with "
        "their line art (npm pack, cached; needs the svg extra)",
        description="Render each OpenMoji emoji drawn in the five skin tones (its default and five tones: "
        "one class) to DEST/color/<class>/<hexcode>.png, and its black line art to DEST/lineart/<class>/ "
        "under the same names; train on DEST/color. Needs resvg-py: pip install 'memopainter[svg]'.",
        epilog="example: memopainter data openmoji data/openmoji --size 512",
    )
    openmoji.add_argument("dest", type=Path, metavar="DEST", help="dataset folder to write")
    openmoji.add_argument(
        "--size",
        type=positive_int,
        default=DEFAULT_SIZE,
        metavar="PX",
        help=f"width and height of every image, 8 to 4096 (default {DEFAULT_SIZE})",
    )
    openmoji.add_argument(
        "--source",
        type=Path,
        metavar="FILE_OR_DIR",
        help="the openmoji 17.0.0 tarball (.tgz) or its extracted folder",
    )
    openmoji.add_argument(
        "--max-classes",
        type=positive_int,
        default=None,
        metavar="N",
        help="keep N emoji, evenly spaced over OpenMoji's order (default: all)",
    )
    openmoji.add_argument("--force", action="store_true", help=FORCE_HELP)
    openmoji.set_defaults(run=run_openmoji)


def _register_folder(actions: argparse._SubParsersAction) -> None:
    folder = actions.add_parser(
        "folder",
        help="normalise any folder of images (class sub-folders kept) into PNGs",
        epilog="example: memopainter data folder ~/Pictures/sprites data/sprites",
    )
    folder.add_argument("src", type=Path, metavar="SRC", help="folder of images, class sub-folders or flat")
    folder.add_argument("dest", type=Path, metavar="DEST", help="dataset folder to write")
    folder.add_argument("--force", action="store_true", help=FORCE_HELP)
    folder.add_argument("--skip-bad", action="store_true", help=SKIP_BAD_HELP)
    folder.set_defaults(run=run_folder)


def _register_split(actions: argparse._SubParsersAction) -> None:
    split = actions.add_parser(
        "split",
        help="few-shot split: K train images per class, the rest (or T) to test",
        epilog="example: memopainter data split data/kenney data/kenney-1shot --shots 1 --ways 5 --seed 0",
    )
    split.add_argument("src", type=Path, metavar="SRC", help="class-folder dataset")
    split.add_argument("dest", type=Path, metavar="DEST", help="split folder to write (train/ and test/)")
    split.add_argument(
        "--shots", type=positive_int, required=True, metavar="K", help="training images per class"
    )
    split.add_argument(
        "--ways", type=positive_int, default=None, metavar="N", help="classes drawn (default: all)"
    )
    split.add_argument(
        "--test-per-class",
        type=positive_int,
        default=None,
        metavar="T",
        help="test images per class (default: all others)",
    )
    split.add_argument("--seed", type=int, default=0, help="seed of the draw (default 0)")
    split.add_argument(
        "--lineart",
        type=Path,
        metavar="LINES_DIR",
        help="line art drawn for SRC's images under the same relative paths (e.g. the lineart/ folder that "
        "`data openmoji` writes beside color/): copied to DEST/lineart/train and DEST/lineart/test",
    )
    split.add_argument("--force", action="store_true", help=FORCE_HELP)
    split.add_argument("--skip-bad", action="store_true", help=SKIP_BAD_HELP)
    split.set_defaults(run=run_split)
