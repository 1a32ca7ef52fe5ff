"""`memopainter train`: train a model on a folder of color images."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from memopainter.config import ConfigError, RunConfig, load_config
from memopainter.core.checkpoint import CheckpointError
from memopainter.data.images import ImageLoadError
from memopainter.networks.backbones import WeightsError
from memopainter.training import distributed
from memopainter.training.events import TextProgress
from memopainter.training.loop import train


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `train` command."""
    parser = subparsers.add_parser(
        "train",
        help="train a model on a folder of color images",
        description="Train MemoPainter on DATA_DIR (color images, searched recursively; sub-folders are "
        "classes, used only by --supervised and by evaluation). RUN_DIR receives config.json, metrics.jsonl, "
        "sample grids, checkpoint.safetensors (resumable) and model.safetensors (final).",
        epilog="example: memopainter train frames/ --out runs/first --steps 2000 --feature rgb; on N "
        "processes: torchrun --standalone --nproc_per_node=N -m memopainter train ... (--batch-size is per "
        "process)",
    )
    parser.add_argument("data_dir", type=Path, metavar="DATA_DIR")
    parser.add_argument("--out", type=Path, required=True, metavar="RUN_DIR", help="run folder to write")
    parser.add_argument("--image-size", type=int, help="training image side, a power of two (default 64)")
    parser.add_argument("--feature", choices=("dist", "rgb"), help="color feature in memory (default dist)")
    parser.add_argument(
        "--no-memory", action="store_true", help="the Res-cGAN ablation: no memory, no condition"
    )
    parser.add_argument(
        "--supervised", action="store_true", help="memory matches by class label (upper bound)"
    )
    length = parser.add_mutually_exclusive_group()
    length.add_argument("--epochs", type=int, help="passes over the data (default 30)")
    length.add_argument("--steps", type=int, help="batches to train; overrides --epochs")
    parser.add_argument("--batch-size", type=int, help="images per batch (default 16)")
    parser.add_argument("--seed", type=int, help="random seed (default 0)")
    parser.add_argument("--device", help="cpu (default) or cuda")
    parser.add_argument("--resume", action="store_true", help="continue RUN_DIR's last checkpoint exactly")
    parser.add_argument(
        "--config", type=Path, metavar="FILE.toml", help="settings file (see config.json of a run)"
    )
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="e.g. --set train.lr=1e-4"
    )
    parser.add_argument("--dry-run", action="store_true", help="print the resolved config and exit")
    parser.set_defaults(run=run)


def resolve(args: argparse.Namespace) -> RunConfig:
    """The run's config: defaults, then --config, then the dedicated flags, then --set."""
    flags = {
        "data.image_size": args.image_size,
        "data.feature": args.feature,
        "train.epochs": args.epochs,
        "train.steps": args.steps,
        "train.batch_size": args.batch_size,
        "train.seed": args.seed,
        "train.device": args.device,
    }
    overrides = [f"{key}={json.dumps(value)}" for key, value in flags.items() if value is not None]
    if args.epochs is not None:
        overrides.append("train.steps=0")
    if args.no_memory:
        overrides.append("memory.enabled=false")
    if args.supervised:
        overrides.append("memory.supervised=true")
    overrides += args.set
    saved = args.out / "config.json"
    if args.resume and args.config is None and saved.is_file():
        # A resumed run keeps its own settings; flags may still lengthen it.
        values = json.loads(saved.read_text(encoding="utf-8"))
        return RunConfig.from_dict(values, source=str(saved)).override(overrides)
    return load_config(args.config, overrides)


def _stderr(message: str) -> None:
    print(message, file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    """Validate, then train; errors are one line on stderr and exit status 1."""
    logging.basicConfig(level=logging.WARNING, format="%(message)s", stream=sys.stderr)
    try:
        config = resolve(args)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.dry_run:
        print(json.dumps(config.to_dict(), indent=2))
        return 0
    if not args.data_dir.is_dir():
        print(f"error: {args.data_dir}: not a folder of images", file=sys.stderr)
        return 1
    if args.resume and not (args.out / "checkpoint.safetensors").is_file():
        print(f"error: {args.out}: nothing to resume (no checkpoint.safetensors)", file=sys.stderr)
        return 1
    group = None
    try:
        group = distributed.from_env(config.train.device)
        report = TextProgress(_stderr)
        final = train(config, args.data_dir, args.out, resume=args.resume, on_event=report, group=group)
    except (ValueError, RuntimeError, WeightsError, CheckpointError, ImageLoadError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    finally:
        distributed.cleanup(group)
    if group is None or group.is_main:
        print(final)
    return 0
