"""`memopainter train`: train a model on a folder of color images."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from memopainter.cli.common import EXIT_FAILED, EXIT_USAGE
from memopainter.config import INPUTS, PAPER_SETTINGS, ConfigError, RunConfig, load_config
from memopainter.core.checkpoint import CheckpointError
from memopainter.core.model import CONFIG_FILE
from memopainter.data.images import ImageLoadError
from memopainter.networks.backbones import WeightsError
from memopainter.training import distributed
from memopainter.training.events import TextProgress, TrainEvent
from memopainter.training.loop import train
from memopainter.training.run_folder import RunFolderError, check_not_both, check_run_folder


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `train` command."""
    parser = subparsers.add_parser(
        "train",
        help="train a model on a folder of color images",
        description="Train MemoPainter on DATA_DIR (color images, searched recursively; sub-folders are "
        "classes, used only by --supervised and by evaluation). RUN_DIR receives config.json, metrics.jsonl, "
        "sample grids, checkpoint.safetensors (resumable) and model.safetensors (final). A RUN_DIR that "
        "holds files is refused unless --resume or --overwrite. Exit status: 0 done, 1 failed or images "
        "skipped (without --skip-bad), 2 refused before any work.",
        epilog="example: memopainter train frames/ --out runs/first --steps 2000 --feature rgb; on N "
        "processes: torchrun --standalone --nproc_per_node=N -m memopainter train ... (--batch-size is per "
        "process)",
    )
    parser.add_argument("data_dir", type=Path, metavar="DATA_DIR")
    parser.add_argument("--out", type=Path, required=True, metavar="RUN_DIR", help="run folder to write")
    _add_model_options(parser)
    _add_run_options(parser)
    parser.set_defaults(run=run)


def _add_model_options(parser: argparse.ArgumentParser) -> None:
    """What is trained: the flags that shape the model, each setting config keys (see resolve)."""
    parser.add_argument("--image-size", type=int, help="training image side, a power of two (default 64)")
    parser.add_argument("--feature", choices=("dist", "rgb"), help="color feature in memory (default dist)")
    parser.add_argument(
        "--input",
        choices=INPUTS,
        help="what the model colors: gray frames (default) or lineart (black lines on white; it predicts "
        "the lightness too); stored in the model",
    )
    parser.add_argument(
        "--lineart",
        metavar="LINES_DIR",
        help="with --input lineart: drawn line art under the same relative paths as DATA_DIR's images (as "
        "`data split --lineart` writes it); frames without one train on lines extracted from their colors",
    )
    parser.add_argument(
        "--no-memory", action="store_true", help="the Res-cGAN ablation: no memory, no condition"
    )
    parser.add_argument(
        "--supervised", action="store_true", help="memory matches by class label (upper bound)"
    )
    parser.add_argument(
        "--paper",
        action="store_true",
        help="the paper's configuration: GAN generator (model.head=ab) and the pooled backbone feature as "
        "the query (memory.descriptors=pooled), instead of the measured defaults",
    )


def _add_run_options(parser: argparse.ArgumentParser) -> None:
    """How it is trained: length, batch, seed, device, the run folder's handling, settings and --dry-run."""
    length = parser.add_mutually_exclusive_group()
    length.add_argument("--epochs", type=int, help="passes over the data, at least 1 (default 30)")
    length.add_argument("--steps", type=int, help="batches to train, at least 1; overrides --epochs")
    parser.add_argument("--batch-size", type=int, help="images per batch (default 16)")
    parser.add_argument("--seed", type=int, help="random seed (default 0)")
    parser.add_argument("--device", help="cpu (default) or cuda")
    parser.add_argument("--resume", action="store_true", help="continue RUN_DIR's last checkpoint exactly")
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="start over in a RUN_DIR that holds a run: its model, checkpoint, config, metrics and samples "
        "are deleted once the data is loaded",
    )
    parser.add_argument(
        "--skip-bad",
        action="store_true",
        help="train without unreadable images and exit 0 (they are still listed); without it, exit 1",
    )
    parser.add_argument(
        "--config", type=Path, metavar="FILE.toml", help="settings file (see config.json of a run)"
    )
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="e.g. --set train.lr=1e-4"
    )
    parser.add_argument("--dry-run", action="store_true", help="print the resolved config and exit")


def resolve(args: argparse.Namespace) -> RunConfig:
    """The run's config: defaults, then --config, then the dedicated flags, then --set."""
    flags = {
        "data.image_size": args.image_size,
        "data.feature": args.feature,
        "data.input": args.input,
        "data.lineart": None if args.lineart is None else str(Path(args.lineart).resolve()),
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
    if args.paper:
        overrides += list(PAPER_SETTINGS)
    overrides += args.set
    saved = args.out / CONFIG_FILE
    if args.resume and args.config is None and saved.is_file():
        # A resumed run keeps its own settings; flags may still lengthen it.
        values = json.loads(saved.read_text(encoding="utf-8"))
        return RunConfig.from_dict(values, source=str(saved)).override(overrides)
    return load_config(args.config, overrides)


def _stderr(message: str) -> None:
    print(message, file=sys.stderr)


def check_length(args: argparse.Namespace) -> None:
    """Refuse --steps 0 or --epochs 0: steps = 0 means "use epochs" in a config, never as a flag."""
    for flag, value in (("--steps", args.steps), ("--epochs", args.epochs)):
        if value is not None and value < 1:
            raise ConfigError(f"{flag} must be at least 1, got {value}")


def run(args: argparse.Namespace) -> int:
    """Validate, then train; errors are one line on stderr: exit 2 when refused before any work, else 1."""
    logging.basicConfig(level=logging.WARNING, format="%(message)s", stream=sys.stderr)
    try:
        check_length(args)
        check_not_both(args.out, args.resume, args.overwrite)  # before --resume reads RUN_DIR's config.json
        config = resolve(args)
    except (ConfigError, RunFolderError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    if args.dry_run:
        print(json.dumps(config.to_dict(), indent=2))
        return 0
    if not args.data_dir.is_dir():
        print(f"error: {args.data_dir}: not a folder of images", file=sys.stderr)
        return EXIT_FAILED
    try:  # every rank checks, before joining the others: a refusal ends them all at once
        check_run_folder(args.out, args.data_dir, args.resume, args.overwrite)
    except RunFolderError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    return _train(args, config)


def _train(args: argparse.Namespace, config: RunConfig) -> int:
    """Train as checked; the model's path on stdout, then exit 1 if images were skipped without --skip-bad."""
    group, skipped = None, []
    report = TextProgress(_stderr)

    def on_event(event: TrainEvent) -> None:
        if event.kind == "skipped":
            skipped.append(event.path)
        report(event)

    try:
        group = distributed.from_env(config.train.device)
        final = train(
            config,
            args.data_dir,
            args.out,
            args.resume,
            on_event=on_event,
            group=group,
            overwrite=args.overwrite,
        )
    except RunFolderError as error:  # RUN_DIR cannot be written: found before the data is loaded
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except (ValueError, RuntimeError, WeightsError, CheckpointError, ImageLoadError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        distributed.cleanup(group)
    if group is None or group.is_main:
        print(final)
    if skipped and not args.skip_bad:
        count = f"{len(skipped)} unreadable image{'' if len(skipped) == 1 else 's'}"
        print(
            f"error: trained without {count} of {args.data_dir} (listed above); pass --skip-bad to accept "
            "that with exit status 0",
            file=sys.stderr,
        )
        return EXIT_FAILED
    return 0
