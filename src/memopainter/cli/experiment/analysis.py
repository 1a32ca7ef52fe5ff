"""Experiments on a model already trained: upsample, diagnose, sequence and descriptors."""

from __future__ import annotations

import argparse
from pathlib import Path

from memopainter.cli.common import positive_int
from memopainter.cli.experiment.shared import measure_and_write, say
from memopainter.config import RunConfig
from memopainter.experiments.descriptors import descriptor_trials, write_descriptors
from memopainter.experiments.diagnosis import diagnose, write_diagnosis
from memopainter.experiments.sequence import sequence_experiment, write_sequence
from memopainter.experiments.upsampling import upsampling_experiment, write_upsampling


def register(experiments: argparse._SubParsersAction) -> None:
    """Add upsample, diagnose, sequence and descriptors."""
    _register_upsampling(experiments)
    _register_diagnosis(experiments)
    _register_sequence(experiments)
    _register_descriptors(experiments)


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
    return measure_and_write(
        args.out,
        lambda: upsampling_experiment(args.model, args.test_dir, args.upscale, say=say),
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
    return measure_and_write(
        args.out,
        lambda: diagnose(args.model, args.train_dir, args.test_dir, say=say),
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
    return measure_and_write(
        args.out,
        lambda: sequence_experiment(args.model, args.test_dir, say=say),
        lambda result: write_sequence(result, args.out, args.command_line),
        plots=True,
    )


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
    return measure_and_write(
        args.out,
        lambda: descriptor_trials(
            args.model, args.split, args.sets, args.seeds, say=say, lightness_bins=tuple(args.lightness_bins)
        ),
        lambda trials: write_descriptors(trials, args.out, args.command_line),
    )
