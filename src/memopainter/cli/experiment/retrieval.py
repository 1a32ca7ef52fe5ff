"""`memopainter experiment retrieval`: the memory's top-1 retrieval accuracy in few-shot episodes."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from memopainter.cli.common import EXIT_FAILED, EXIT_USAGE, positive_int, print_error
from memopainter.cli.experiment.shared import refused_output, say
from memopainter.config import RunConfig
from memopainter.experiments.retrieval import (
    EpisodeError,
    RetrievalSettings,
    retrieval_experiment,
    retrieval_features,
    write_retrieval,
)
from memopainter.networks.backbones import BACKBONES, DEFAULT_BACKBONE, WeightsError


def register(experiments: argparse._SubParsersAction) -> None:
    retrieval = experiments.add_parser(
        "retrieval",
        help="top-1 retrieval accuracy of the memory in N-way K-shot episodes (paper Table 2)",
        description="For each N-way K-shot episode, drawn among the classes (top-level sub-folders of DATA) "
        "with at least K + 1 images, train a fresh query head and memory (no GAN) on the K shots of each "
        "class and measure the share of held-out images of those classes whose top-1 memory slot was "
        "written by an image of their class, unsupervised (threshold triplet loss) and supervised (labels). "
        "Writes OUT/retrieval.md, OUT/retrieval.json and OUT/retrieval.png with the mean and 95% "
        "t-interval over episodes. Backbone and color features are cached, so later runs start at once.",
        epilog="example: memopainter experiment retrieval data/kenney --ways 5 15 --shots 5 10 --out res/",
    )
    retrieval.add_argument("data", type=Path, metavar="DATA", help="folder with one sub-folder per class")
    retrieval.add_argument("--out", type=Path, required=True, metavar="DIR", help="folder to write into")
    retrieval.add_argument("--ways", type=positive_int, nargs="+", default=[5, 15], metavar="N")
    retrieval.add_argument("--shots", type=positive_int, nargs="+", default=[5, 10], metavar="K")
    retrieval.add_argument(
        "--episodes", type=positive_int, default=20, metavar="E", help="episodes per cell (default 20)"
    )
    retrieval.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    retrieval.add_argument(
        "--epochs", type=positive_int, default=10, help="passes over each episode's shots (default 10)"
    )
    retrieval.add_argument("--batch-size", type=positive_int, default=4, metavar="B", help="(default 4)")
    retrieval.add_argument(
        "--test-per-class",
        type=positive_int,
        metavar="T",
        help="held-out queries per class (default: every image not drawn as a shot)",
    )
    retrieval.add_argument("--feature", choices=("dist", "rgb"), default="dist", help="(default dist)")
    retrieval.add_argument(
        "--descriptors",
        default=RunConfig().memory.descriptors,
        metavar="A+B",
        help=f"what the query head sees (default {RunConfig().memory.descriptors}; the paper's: pooled)",
    )
    retrieval.add_argument(
        "--lightness-bins",
        type=positive_int,
        default=RunConfig().memory.lightness_bins,
        metavar="N",
        help=f"bins of the lightness histogram (default {RunConfig().memory.lightness_bins})",
    )
    retrieval.add_argument(
        "--threshold", type=float, help="unsupervised color-match threshold (default: the feature's)"
    )
    retrieval.add_argument(
        "--backbone", choices=sorted(BACKBONES), default=DEFAULT_BACKBONE, help="query backbone"
    )
    retrieval.add_argument(
        "--weights", type=Path, metavar="FILE", help="the backbone's weights file, if not found"
    )
    retrieval.set_defaults(run=run_retrieval)


def run_retrieval(args: argparse.Namespace) -> int:
    """Check the arguments, featurize DATA (cached), run the episodes and write the report."""
    refused = refused_output(args.out)
    if refused is not None:
        return refused
    if args.threshold is not None and not 0 < args.threshold < math.inf:
        print_error(f"--threshold must be a number > 0, got {args.threshold}")
        return EXIT_USAGE
    if min(args.ways) < 2:
        print_error(f"--ways must be at least 2 for retrieval to be a choice, got {min(args.ways)}")
        return EXIT_USAGE
    settings = RetrievalSettings(
        epochs=args.epochs,
        batch_size=args.batch_size,
        feature=args.feature,
        threshold=args.threshold,
        test_per_class=args.test_per_class,
    )
    try:
        data = retrieval_features(
            args.data,
            args.feature,
            args.backbone,
            args.descriptors,
            args.lightness_bins,
            weights=args.weights,
            progress=say,
        )
    except (WeightsError, ValueError, OSError) as error:
        print_error(str(error))
        return EXIT_FAILED
    if not data.class_names:
        print_error(f"{args.data}: DATA has no class sub-folders; retrieval accuracy needs classes")
        return EXIT_USAGE
    try:
        result = retrieval_experiment(
            data.query_features,
            data.color,
            data.labels,
            data.class_names,
            args.ways,
            args.shots,
            args.episodes,
            args.seed,
            settings,
            progress=say,
        )
    except EpisodeError as error:
        print_error(f"{args.data}: {error}")
        return EXIT_USAGE
    for path in write_retrieval(result, args.out, str(args.data), args.command_line):
        print(path)
    return 0
