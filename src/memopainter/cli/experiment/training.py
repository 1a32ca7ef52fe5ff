"""Experiments that train their own models on a split: compare, sweep, rare, lineart and time-to-quality."""

from __future__ import annotations

import argparse
from pathlib import Path

from memopainter.cli.common import EXIT_USAGE, positive_float, positive_int, print_error
from memopainter.cli.experiment.shared import (
    input_arguments,
    methods_argument,
    run_training_experiment,
    say,
    shared_training_arguments,
)
from memopainter.experiments.compare import compare_experiment, write_comparison
from memopainter.experiments.lineart import MEMORY, NO_MEMORY, lineart_experiment, write_lineart
from memopainter.experiments.methods import BASELINE, METHODS
from memopainter.experiments.rare import DEFAULT_METHODS as RARE_METHODS
from memopainter.experiments.rare import rare_experiment, write_rare
from memopainter.experiments.sweep import sweep_experiment, write_sweep
from memopainter.experiments.time_to_quality import PAPER, time_to_quality, write_time_to_quality


def register(experiments: argparse._SubParsersAction) -> None:
    """Add compare, sweep, rare, time-to-quality and lineart."""
    _register_compare(experiments)
    _register_sweep(experiments)
    _register_rare(experiments)
    _register_time_to_quality(experiments)
    _register_lineart(experiments)


def _register_compare(experiments: argparse._SubParsersAction) -> None:
    compare = experiments.add_parser(
        "compare",
        help="MemoPainter against baselines trained on the same split (paper Table 1)",
        description="Train every method on SPLIT_DIR/train with the same steps, batch, seed and image size, "
        "evaluate each on SPLIT_DIR/test, and write OUT/compare.md (delta_e2000, best of k, PSNR, SSIM, "
        "colorfulness), OUT/compare.json, OUT/compare.png and OUT/compare_grid.png (the same test images "
        "across methods). Methods: "
        + "; ".join(f"{name}: {m.description}" for name, m in METHODS.items())
        + ". Runs are kept in OUT/runs/METHOD and reused when their settings match.",
        epilog="example: memopainter experiment compare data/k3 --steps 800 --out results/compare-k3",
    )
    input_arguments(compare, "split", "SPLIT_DIR", "a split with train/ and test/")
    methods_argument(compare, list(METHODS))
    compare.add_argument(
        "--paired-against",
        choices=list(METHODS),
        metavar="METHOD",
        help=f"the method every other is paired with, per image, one of --methods (default {BASELINE}, the "
        "no-memory ablation, when it is among them, else the first of them)",
    )
    shared_training_arguments(compare)
    compare.set_defaults(run=run_compare)


def run_compare(args: argparse.Namespace) -> int:
    """Train, evaluate and report every method on the split."""
    if args.paired_against is None:
        args.paired_against = BASELINE if BASELINE in args.methods else args.methods[0]
    elif args.paired_against not in args.methods:
        print_error(f"--paired-against {args.paired_against}: not one of --methods {' '.join(args.methods)}")
        return EXIT_USAGE
    return run_training_experiment(
        args,
        args.methods,
        lambda shared: compare_experiment(
            args.split, args.out, shared, args.methods, say=say, against=args.paired_against
        ),
        write_comparison,
    )


def _register_sweep(experiments: argparse._SubParsersAction) -> None:
    sweep = experiments.add_parser(
        "sweep",
        help="colorization error against memory size and color threshold (paper Fig. 9)",
        description="Train MemoPainter once on SPLIT_DIR/train, then for every memory size and threshold "
        "train a fresh query head and memory by replaying the memory's part of that run (the generator does "
        "not depend on the memory: it trains on ground-truth color features) and evaluate on SPLIT_DIR/test. "
        "Writes OUT/sweep.md (a table of delta_e2000), OUT/sweep.json and OUT/sweep.png.",
        epilog="example: memopainter experiment sweep data/k3 --steps 800 --memory-sizes 20 50 100 400 "
        "--thresholds 0.5 1 2 --out results/sweep-k3",
    )
    input_arguments(sweep, "split", "SPLIT_DIR", "a split with train/ and test/")
    sweep.add_argument(
        "--memory-sizes", type=positive_int, nargs="+", required=True, metavar="M", help="memory slots"
    )
    sweep.add_argument(
        "--thresholds",
        type=positive_float,
        nargs="+",
        required=True,
        metavar="T",
        help="color thresholds (symmetric KL in nats for dist, CIEDE2000 for rgb)",
    )
    sweep.add_argument("--feature", choices=("dist", "rgb"), default="dist", help="(default dist)")
    shared_training_arguments(sweep)
    sweep.set_defaults(run=run_sweep)


def run_sweep(args: argparse.Namespace) -> int:
    """Train once, replay the memory for every (size, threshold) and report."""
    method = "memopainter-dist" if args.feature == "dist" else "memopainter-rgb"
    return run_training_experiment(
        args,
        [method],
        lambda shared: sweep_experiment(
            args.split, args.out, shared, args.memory_sizes, args.thresholds, args.feature, say=say
        ),
        write_sweep,
    )


def _register_rare(experiments: argparse._SubParsersAction) -> None:
    rare = experiments.add_parser(
        "rare",
        help="a color variant seen only a few times in training: memory against no memory (paper Fig. 2, 6)",
        description="DATA has one folder per color variant with the same item under the same file name in "
        "each (memopainter data emoji writes skin tones so). Training gets the --common variant of half the "
        "items and the --rare variant of only --rare-shots of them; the test gets both variants of the other "
        "items. Every method is trained on that split and scored on each variant. Writes OUT/rare.md, "
        "OUT/rare.json, OUT/rare.png and OUT/rare_grid.png; the split is in OUT/split, runs in OUT/runs.",
        epilog="example: memopainter experiment rare data/emoji --rare dark --common default --rare-shots 5 "
        "--steps 800 --out results/rare-emoji",
    )
    input_arguments(rare, "data", "DATA", "one sub-folder per color variant")
    rare.add_argument("--rare", required=True, metavar="VARIANT", help="the rare variant's folder name")
    rare.add_argument("--common", required=True, metavar="VARIANT", help="the dominant variant's folder name")
    rare.add_argument(
        "--rare-shots", type=positive_int, default=5, metavar="K", help="rare training images (default 5)"
    )
    rare.add_argument(
        "--test-share",
        type=positive_float,
        default=0.5,
        metavar="F",
        help="share of the items held out for the test (default 0.5)",
    )
    methods_argument(rare, list(RARE_METHODS))
    shared_training_arguments(rare)
    rare.set_defaults(run=run_rare)


def run_rare(args: argparse.Namespace) -> int:
    """Build the split, train and score every method on both variants."""
    if not args.test_share < 1:
        print_error(f"--test-share must be below 1, got {args.test_share}")
        return EXIT_USAGE
    return run_training_experiment(
        args,
        args.methods,
        lambda shared: rare_experiment(
            args.data,
            args.out,
            shared,
            args.rare,
            args.common,
            args.rare_shots,
            args.test_share,
            args.methods,
            say=say,
        ),
        write_rare,
    )


def _register_time_to_quality(experiments: argparse._SubParsersAction) -> None:
    timing = experiments.add_parser(
        "time-to-quality",
        help="delta_e2000 against training minutes, per method",
        description="Train each method on SPLIT_DIR/train in chunks ending at each milestone (each chunk "
        "resumes the last exactly), score the model top-1 on SPLIT_DIR/test after each, and write "
        "OUT/time_to_quality.md, .json and .png: delta_e2000 against the training minutes (the steps' own "
        f"times), and when each method reaches the quality of {PAPER} (the paper's configuration) at 800 "
        "steps.",
        epilog="example: memopainter experiment time-to-quality data/k3 --milestones 100 200 400 800 1600 "
        "--out results/ttq-k3",
    )
    timing.add_argument("split", type=Path, metavar="SPLIT_DIR", help="a split with train/ and test/")
    timing.add_argument("--out", type=Path, required=True, metavar="DIR", help="folder to write into")
    timing.add_argument(
        "--milestones",
        type=positive_int,
        nargs="+",
        default=[100, 200, 400, 800, 1600],
        metavar="STEPS",
        help="steps after which each model is scored (default 100 200 400 800 1600)",
    )
    methods_argument(timing, ["memopainter-bins", PAPER])
    shared_training_arguments(timing, best_of_k=False)
    timing.set_defaults(run=run_time_to_quality)


def run_time_to_quality(args: argparse.Namespace) -> int:
    """Train every method milestone by milestone, scoring it after each."""
    args.steps = max(args.milestones)
    return run_training_experiment(
        args,
        args.methods,
        lambda shared: time_to_quality(args.split, args.out, args.methods, args.milestones, shared, say=say),
        write_time_to_quality,
    )


def _register_lineart(experiments: argparse._SubParsersAction) -> None:
    lineart = experiments.add_parser(
        "lineart",
        help="line art in, color out: MemoPainter against no memory and the nearest reference",
        description="Train MemoPainter (bins head) and the same network without memory on SPLIT_DIR/train "
        "with data.input = lineart (drawn line art from SPLIT_DIR/lineart/train where `data split "
        "--lineart` put it, else lines extracted from the colors), color every SPLIT_DIR/test image from "
        "its line art (SPLIT_DIR/lineart/test, else extracted), also from the training frame of nearest "
        "line art, and write OUT/lineart.md (delta_e2000, best of k, PSNR, paired 95% intervals), "
        "OUT/lineart.json and OUT/lineart_grid.png. Runs are kept in OUT/runs/METHOD and reused.",
        epilog="example: memopainter experiment lineart data/om-3shot --steps 800 --out results/lineart",
    )
    input_arguments(lineart, "split", "SPLIT_DIR", "a split with train/ and test/ (and lineart/)")
    shared_training_arguments(lineart)
    lineart.set_defaults(run=run_lineart)


def run_lineart(args: argparse.Namespace) -> int:
    """Train both networks in line-art mode, add the nearest reference, and report."""
    return run_training_experiment(
        args,
        [MEMORY, NO_MEMORY],
        lambda shared: lineart_experiment(args.split, args.out, shared, say),
        write_lineart,
    )
