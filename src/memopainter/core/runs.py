"""Run folders that can be reused: a finished model trained with exactly the settings asked for, or an
interrupted run of them that can resume."""

from __future__ import annotations

import json
from pathlib import Path

from memopainter.config import RunConfig
from memopainter.core.checkpoint import CheckpointError, load_checkpoint_meta
from memopainter.core.model import CHECKPOINT_FILE, CONFIG_FILE, MODEL_FILE
from memopainter.data.images import ImageLoadError, list_images, load_image


def finished_with(run: str | Path, config: RunConfig, data_dir: str | Path) -> bool:
    """Whether `run` holds a final model whose saved config.json equals `config`, trained on the images
    now under `data_dir` (the same files by relative path: a run on other data is never reused)."""
    return _trained_with(Path(run) / MODEL_FILE, config, data_dir)


def interrupted_with(run: str | Path, config: RunConfig, data_dir: str | Path) -> bool:
    """Whether `run` is an unfinished run of `config` on the images under `data_dir`, with a checkpoint to
    resume from (`train(..., resume=True)`)."""
    run = Path(run)
    return not (run / MODEL_FILE).exists() and _trained_with(run / CHECKPOINT_FILE, config, data_dir)


def _trained_with(file: Path, config: RunConfig, data_dir: str | Path) -> bool:
    """Whether `file`, a model or checkpoint in a run folder, was written by `config` on data_dir's images."""
    saved = file.parent / CONFIG_FILE
    if not file.is_file() or not saved.is_file():
        return False
    try:
        values = json.loads(saved.read_text(encoding="utf-8"))
        if RunConfig.from_dict(values, source=str(saved)).to_dict() != config.to_dict():
            return False
        meta = load_checkpoint_meta(file)  # the header: which images it was trained on
    except (OSError, ValueError, CheckpointError):  # ConfigError and JSONDecodeError are ValueErrors
        return False  # unreadable or from another version: not reusable, train again
    trained = set(meta.get("source_paths") or [])
    images = {str(path.relative_to(data_dir)): path for path in list_images(data_dir)}
    if not trained <= images.keys():
        return False
    # Training leaves out what it cannot read: only such files may be in the data and not in the run.
    return all(_unreadable(images[name]) for name in images.keys() - trained)


def _unreadable(path: Path) -> bool:
    try:
        load_image(path)
    except (ImageLoadError, ValueError):
        return True
    return False
