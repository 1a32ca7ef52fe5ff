"""`memopainter experiment`: the paper's experiments on our data, each writing a table, JSON and a plot."""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from memopainter.cli.common import positive_int, print_error
from memopainter.config import ConfigError, RunConfig
from memopainter.core.checkpoint import CheckpointError
from memopainter.data.dataset import load_training_data
from memopainter.evaluation.report import ReportUnavailable, require_matplotlib
from memopainter.experiments.compare import (
    BASELINE,
    METHODS,
    SharedSettings,
    compare_experiment,
    method_config,
    write_comparison,
)
from memopainter.experiments.descriptors import descriptor_trials, write_descriptors
from memopainter.experiments.diagnosis import diagnose, write_diagnosis
from memopainter.experiments.lineart import MEMORY, NO_MEMORY, lineart_experiment, write_lineart
from memopainter.experiments.rare import DEFAULT_METHODS as RARE_METHODS
from memopainter.experiments.rare import rare_experiment, write_rare
from memopainter.experiments.retrieval import (
    EpisodeError,
    RetrievalSettings,
    retrieval_experiment,
    write_report,
)
from memopainter.experiments.sequence import sequence_experiment, write_sequence
from memopainter.experiments.sweep import sweep_experiment, write_sweep
from memopainter.experiments.time_to_quality import PAPER, time_to_quality, write_time_to_quality
from memopainter.experiments.upsampling import upsampling_experiment, write_upsampling
from memopainter.networks.backbones import BACKBONES, DEFAULT_BACKBONE, WeightsError, load_backbone

EXIT_FAILED = 1  # the data could not be read or featurized
EXIT_USAGE = 2  # refused before training: bad arguments, too few classes or images, no matplotlib
RETRIEVAL_IMAGE_SIZE = 32  # only the cached features are used; the unused network tensors stay small


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `experiment` command and its sub-commands."""
    parser = subparsers.add_parser(
        "experiment",
        help="reproduce the paper's experiments on a dataset",
        description="Reproduce an experiment of the paper; each writes a markdown table, JSON and a plot.",
    )
    experiments = parser.add_subparsers(
        dest="experiment", metavar="EXPERIMENT", required=True, action=_RecordingSubParsers
    )
    _register_retrieval(experiments)
    _register_compare(experiments)
    _register_sweep(experiments)
    _register_rare(experiments)
    _register_upsampling(experiments)
    _register_diagnosis(experiments)
    _register_sequence(experiments)
    _register_time_to_quality(experiments)
    _register_descriptors(experiments)
    _register_lineart(experiments)


class _RecordingSubParsers(argparse._SubParsersAction):
    """The experiments' sub-parsers, which also keep the words they were given as `args.command_line`.

    Here, not in main(): these are exactly the words after `experiment` however the parser was called (the
    console script, main(argv), or a test's own parser), and argv is read once, not rebuilt flag by flag.
    """

    def __call__(self, parser, namespace, values, option_string=None):
        namespace.command_line = recorded_command(["experiment", *values])
        super().__call__(parser, namespace, values, option_string)


def recorded_command(argv: Sequence[str]) -> str:
    """The command written into each results table: `memopainter` and the arguments as typed, shell-quoted."""
    return shlex.join(["memopainter", *argv])


def _register_retrieval(experiments: argparse._SubParsersAction) -> None:
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
    _input_arguments(compare, "split", "SPLIT_DIR", "a split with train/ and test/")
    _methods_argument(compare, list(METHODS))
    compare.add_argument(
        "--paired-against",
        choices=list(METHODS),
        default=BASELINE,
        metavar="METHOD",
        help=f"the method every other is paired with, per image (default {BASELINE}, the no-memory ablation)",
    )
    _shared_training_arguments(compare)
    compare.set_defaults(run=run_compare)


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
    _input_arguments(sweep, "split", "SPLIT_DIR", "a split with train/ and test/")
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
    _shared_training_arguments(sweep)
    sweep.set_defaults(run=run_sweep)


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
    _input_arguments(rare, "data", "DATA", "one sub-folder per color variant")
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
    _methods_argument(rare, list(RARE_METHODS))
    _shared_training_arguments(rare)
    rare.set_defaults(run=run_rare)


def _register_descriptors(experiments: argparse._SubParsersAction) -> None:
    descriptors = experiments.add_parser(
        "descriptors",
        help="query descriptors compared on one trained generator, over seeds",
        description="For every descriptor set and seed, replay the memory's training of MODEL on "
        "SPLIT_DIR/train with that set and seed (exactly as a full run would train it; the generator does "
        "not depend on the memory), colorize SPLIT_DIR/test with MODEL's generator and write "
        "OUT/descriptors.md and OUT/descriptors.json: delta_e2000, best of 3, same-class top-1, slots "
        "written and the most slots held by one class, mean and spread over seeds, and paired differences "
        "against the first set.",
        epilog="example: memopainter experiment descriptors runs/k3 data/k3 --sets pooled pooled+lightness "
        "--seeds 0 1 2 --out res/descriptors",
    )
    descriptors.add_argument("model", type=Path, metavar="MODEL", help="a run folder or a checkpoint file")
    descriptors.add_argument("split", type=Path, metavar="SPLIT_DIR", help="its train/ and test/")
    descriptors.add_argument("--sets", nargs="+", default=["pooled", "pooled+lightness"], metavar="A+B")
    descriptors.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], metavar="SEED")
    descriptors.add_argument(
        "--lightness-bins",
        type=positive_int,
        nargs="+",
        default=[RunConfig().memory.lightness_bins],
        metavar="N",
        help=f"bins to try for sets with a lightness histogram (default {RunConfig().memory.lightness_bins})",
    )
    descriptors.add_argument("--out", type=Path, required=True, metavar="DIR", help="folder to write into")
    descriptors.set_defaults(run=run_descriptors)


def run_descriptors(args: argparse.Namespace) -> int:
    """Replay and score every descriptor set and seed, then write the table."""
    return _measure_and_write(
        lambda: descriptor_trials(
            args.model, args.split, args.sets, args.seeds, say=_say, lightness_bins=tuple(args.lightness_bins)
        ),
        lambda trials: write_descriptors(trials, args.out, args.command_line),
    )


def _register_lineart(experiments: argparse._SubParsersAction) -> None:
    lineart = experiments.add_parser(
        "lineart",
        help="line art in, color out: MemoPainter against no memory and the nearest reference",
        description="Train MemoPainter (bins head) and the same network without memory on SPLIT_DIR/train "
        "with data.input = lineart (drawn line art from SPLIT_DIR/lineart/train where `data split "
        "--lineart` put it, else lines extracted from the colors), color every SPLIT_DIR/test image from "
        "its line art (SPLIT_DIR/lineart/test, else extracted), also from the training frame of nearest "
        "line art, and write OUT/lineart.md (delta_e2000, best of k, PSNR, paired 95%% intervals), "
        "OUT/lineart.json and OUT/lineart_grid.png. Runs are kept in OUT/runs/METHOD and reused.",
        epilog="example: memopainter experiment lineart data/om-3shot --steps 800 --out results/lineart",
    )
    _input_arguments(lineart, "split", "SPLIT_DIR", "a split with train/ and test/ (and lineart/)")
    _shared_training_arguments(lineart)
    lineart.set_defaults(run=run_lineart)


def run_lineart(args: argparse.Namespace) -> int:
    """Train both networks in line-art mode, add the nearest reference, and report."""
    return _run_training_experiment(
        args,
        [MEMORY, NO_MEMORY],
        lambda shared: lineart_experiment(args.split, args.out, shared, _say),
        write_lineart,
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
    _methods_argument(timing, ["memopainter-bins", PAPER])
    _shared_training_arguments(timing)
    timing.set_defaults(run=run_time_to_quality)


def run_time_to_quality(args: argparse.Namespace) -> int:
    """Train every method milestone by milestone, scoring it after each."""
    args.steps = max(args.milestones)
    return _run_training_experiment(
        args,
        args.methods,
        lambda shared: time_to_quality(args.split, args.out, args.methods, args.milestones, shared, say=_say),
        write_time_to_quality,
    )


def _input_arguments(parser: argparse.ArgumentParser, name: str, metavar: str, help: str) -> None:
    """The data, the output folder and the step budget of a training experiment."""
    parser.add_argument(name, type=Path, metavar=metavar, help=help)
    parser.add_argument("--out", type=Path, required=True, metavar="DIR", help="folder to write into")
    parser.add_argument("--steps", type=positive_int, required=True, metavar="N", help="steps per model")


def _methods_argument(parser: argparse.ArgumentParser, default: list[str]) -> None:
    """--methods: which of METHODS to train, in this order."""
    parser.add_argument(
        "--methods",
        nargs="+",
        choices=list(METHODS),
        default=default,
        metavar="METHOD",
        help=f"which methods, in this order (default: {' '.join(default)})",
    )


def _shared_training_arguments(parser: argparse.ArgumentParser) -> None:
    """The settings every model of a training experiment shares."""
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--image-size", type=positive_int, default=64, metavar="S", help="(default 64)")
    parser.add_argument("--batch-size", type=positive_int, default=16, metavar="B", help="(default 16)")
    parser.add_argument(
        "--top-k",
        type=positive_int,
        default=3,
        metavar="K",
        help="memory slots scored per test image, for best of k (default 3)",
    )
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a config override for every method, as in train (repeatable)",
    )


def run_retrieval(args: argparse.Namespace) -> int:
    """Check the arguments, featurize DATA (cached), run the episodes and write the report."""
    if args.out.exists() and not args.out.is_dir():
        print_error(f"--out {args.out}: exists and is not a folder")
        return EXIT_USAGE
    if args.threshold is not None and not args.threshold > 0:
        print_error(f"--threshold must be > 0, got {args.threshold}")
        return EXIT_USAGE
    try:
        require_matplotlib()
    except ReportUnavailable as error:
        print_error(str(error))
        return EXIT_USAGE
    settings = RetrievalSettings(
        epochs=args.epochs,
        batch_size=args.batch_size,
        feature=args.feature,
        threshold=args.threshold,
        test_per_class=args.test_per_class,
    )
    try:
        backbone = load_backbone(args.backbone, weights=args.weights)
        data = load_training_data(
            args.data,
            RETRIEVAL_IMAGE_SIZE,
            args.feature,
            backbone,
            progress=_say,
            descriptors=args.descriptors,
            lightness_bins=args.lightness_bins,
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
            progress=_say,
        )
    except EpisodeError as error:
        print_error(f"{args.data}: {error}")
        return EXIT_USAGE
    for path in write_report(result, args.out, str(args.data), args.command_line):
        print(path)
    return 0


def run_compare(args: argparse.Namespace) -> int:
    """Train, evaluate and report every method on the split."""
    return _run_training_experiment(
        args,
        args.methods,
        lambda shared: compare_experiment(
            args.split, args.out, shared, args.methods, say=_say, against=args.paired_against
        ),
        write_comparison,
    )


def run_sweep(args: argparse.Namespace) -> int:
    """Train once, replay the memory for every (size, threshold) and report."""
    method = "memopainter-dist" if args.feature == "dist" else "memopainter-rgb"
    return _run_training_experiment(
        args,
        [method],
        lambda shared: sweep_experiment(
            args.split, args.out, shared, args.memory_sizes, args.thresholds, args.feature, say=_say
        ),
        write_sweep,
    )


def _register_upsampling(experiments: argparse._SubParsersAction) -> None:
    upsampling = experiments.add_parser(
        "upsample",
        help="full-resolution color: each upsampler against bilinear on one trained model",
        description="Colorize every image of TEST_DIR with MODEL once and bring the colors to full "
        "resolution with each upsampler, at the native size and enlarged by nearest neighbour "
        "(--upscale); write OUT/upsampling.md and OUT/upsampling.json with mean delta_e2000, the paired "
        "difference to bilinear with its 95% t-interval, the floor (the true colors at network size, "
        "upsampled) and the colorfulness of the colorings, the floor and the truth, and "
        "OUT/upsampling_grid.png (gray | each upsampler | truth for a few images).",
        epilog="example: memopainter experiment upsample runs/k3 data/k3/test --upscale 1 4 --out res/up",
    )
    upsampling.add_argument("model", type=Path, metavar="MODEL", help="a run folder or a checkpoint file")
    upsampling.add_argument("test_dir", type=Path, metavar="TEST_DIR", help="color images to score against")
    upsampling.add_argument("--upscale", type=positive_int, nargs="+", default=[1, 4], metavar="N")
    upsampling.add_argument("--out", type=Path, required=True, metavar="DIR", help="folder to write into")
    upsampling.set_defaults(run=run_upsampling)


def run_upsampling(args: argparse.Namespace) -> int:
    """Score every upsampler, then write the table."""
    return _measure_and_write(
        lambda: upsampling_experiment(args.model, args.test_dir, args.upscale, say=_say),
        lambda rows: write_upsampling(rows, args.out, str(args.model), str(args.test_dir), args.command_line),
    )


def _register_diagnosis(experiments: argparse._SubParsersAction) -> None:
    diagnosis = experiments.add_parser(
        "diagnose",
        help="why retrieval misses: per-class top-1 accuracy, confusions and kinds of miss",
        description="Retrieve every image of TEST_DIR (class folders) from MODEL's memory as colorize does; "
        "per class, the share whose top-1 slot was written by a frame of their class, the class retrieved "
        "most often instead, and each miss as: the right class at rank 2 or 3, a class with the same gray "
        "image (compared with the frames of TRAIN_DIR, the model's training folder), or other. Writes "
        "OUT/diagnosis.md and OUT/diagnosis.json.",
        epilog="example: memopainter experiment diagnose runs/k3 data/k3/train data/k3/test --out res/diag",
    )
    diagnosis.add_argument("model", type=Path, metavar="MODEL", help="a run folder or a checkpoint file")
    diagnosis.add_argument("train_dir", type=Path, metavar="TRAIN_DIR", help="the model's training folder")
    diagnosis.add_argument("test_dir", type=Path, metavar="TEST_DIR", help="test images in class folders")
    diagnosis.add_argument("--out", type=Path, required=True, metavar="DIR", help="folder to write into")
    diagnosis.set_defaults(run=run_diagnosis)


def run_diagnosis(args: argparse.Namespace) -> int:
    """Diagnose every test image's retrieval, then write the table."""
    return _measure_and_write(
        lambda: diagnose(args.model, args.train_dir, args.test_dir, say=_say),
        lambda rows: write_diagnosis(rows, args.out, args.command_line),
    )


def _register_sequence(experiments: argparse._SubParsersAction) -> None:
    sequence = experiments.add_parser(
        "sequence",
        help="colors across a shot: animations frame by frame against smoothed slots and held colors",
        description="Put the animations among TEST_DIR's images (numbered frames of one name in one class "
        "folder, e.g. walk0..walk7) back to back into one stream and colorize it with MODEL frame by frame, "
        "with the slots smoothed across shots (cuts found from the query keys), and with the slots smoothed "
        "and still pixels' colors held within a shot (what colorize does); write OUT/sequence.md and "
        "OUT/sequence.json (delta_e2000, flicker, unheld flicker, slot switches per 100 steps and same-class "
        "top-1 per method, paired 95% t-intervals of the differences, the issue's targets, the cuts found), "
        "OUT/sequence.png (flicker per animation) and OUT/sequence.gif (gray | frame by frame | no hold | "
        "smoothed | truth for a few animations).",
        epilog="example: memopainter experiment sequence runs/k3 data/k3/test --out res/sequence",
    )
    sequence.add_argument("model", type=Path, metavar="MODEL", help="a run folder or a checkpoint file")
    sequence.add_argument("test_dir", type=Path, metavar="TEST_DIR", help="test images in class folders")
    sequence.add_argument("--out", type=Path, required=True, metavar="DIR", help="folder to write into")
    sequence.set_defaults(run=run_sequence)


def run_sequence(args: argparse.Namespace) -> int:
    """Colorize the stream each way, then write the table, plot and GIF."""
    if args.out.exists() and not args.out.is_dir():
        print_error(f"--out {args.out}: exists and is not a folder")
        return EXIT_USAGE
    try:
        require_matplotlib()
    except ReportUnavailable as error:
        print_error(str(error))
        return EXIT_USAGE
    try:
        result = sequence_experiment(args.model, args.test_dir, say=_say)
    except (CheckpointError, WeightsError, ValueError, OSError) as error:
        print_error(str(error))
        return EXIT_FAILED
    for path in write_sequence(result, args.out, args.command_line):
        print(path)
    return 0


def run_rare(args: argparse.Namespace) -> int:
    """Build the split, train and score every method on both variants."""
    if not args.test_share < 1:
        print_error(f"--test-share must be below 1, got {args.test_share}")
        return EXIT_USAGE
    return _run_training_experiment(
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
            say=_say,
        ),
        write_rare,
    )


def _run_training_experiment(
    args: argparse.Namespace,
    methods: list[str],
    experiment: Callable[[SharedSettings], object],
    write: Callable[[object, Path, str], list[Path]],
) -> int:
    """Refuse bad settings before any training, run the experiment, write its files and print their paths."""
    if args.out.exists() and not args.out.is_dir():
        print_error(f"--out {args.out}: exists and is not a folder")
        return EXIT_USAGE
    try:
        require_matplotlib()
        shared = _shared_settings(args)
        for name in methods:
            method_config(name, shared)  # every method's config is valid before minutes of training
    except (ReportUnavailable, ConfigError) as error:
        print_error(str(error))
        return EXIT_USAGE
    try:
        result = experiment(shared)
    except (WeightsError, CheckpointError, ValueError, OSError) as error:
        print_error(str(error))
        return EXIT_FAILED
    for path in write(result, args.out, args.command_line):
        print(path)
    return 0


def positive_float(text: str) -> float:
    """argparse type: a number > 0."""
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def _shared_settings(args: argparse.Namespace) -> SharedSettings:
    return SharedSettings(
        steps=args.steps,
        seed=args.seed,
        image_size=args.image_size,
        batch_size=args.batch_size,
        top_k=args.top_k,
        device=args.device,
        overrides=tuple(args.overrides),
    )


def _measure_and_write(measure: Callable[[], object], write: Callable[[object], list[Path]]) -> int:
    """Run an experiment on a trained model and print the files it wrote; a bad model or input is exit 1."""
    try:
        result = measure()
    except (CheckpointError, WeightsError, ConfigError, ValueError, OSError) as error:
        print_error(str(error))
        return EXIT_FAILED
    for path in write(result):
        print(path)
    return 0


def _say(message: str) -> None:
    print(message, file=sys.stderr)
