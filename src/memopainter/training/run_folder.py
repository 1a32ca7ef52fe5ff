"""The run folder training writes: refused before any work where using it would lose or mix up files."""

from __future__ import annotations

from pathlib import Path

from memopainter.core.model import CHECKPOINT_FILE, CONFIG_FILE, MODEL_FILE
from memopainter.files import is_leftover, probe_writable, remove

METRICS_FILE = "metrics.jsonl"
SAMPLES_DIR = "samples"
RUN_FILES = (MODEL_FILE, CHECKPOINT_FILE, CONFIG_FILE, METRICS_FILE, SAMPLES_DIR)  # what a run writes
SHOWN_NAMES = 3  # a refusal names this many of the files found


class RunFolderError(ValueError):
    """RUN_DIR cannot be used as asked; the message is one line naming it and what to do."""


def check_run_folder(
    run_dir: str | Path, data_dir: str | Path, resume: bool = False, overwrite: bool = False
) -> None:
    """Refuse a RUN_DIR that is a file, overlaps DATA_DIR, or holds files a new run would replace or mix with.

    A folder that holds anything but leftover temp files is refused unless `resume` (which needs its
    checkpoint) or `overwrite` (the earlier run's files are then deleted by `clear_run`). Reads only.
    """
    run_dir, data_dir = Path(run_dir), Path(data_dir)
    check_not_both(run_dir, resume, overwrite)
    if run_dir.exists() and not run_dir.is_dir():
        raise RunFolderError(f"{run_dir}: RUN_DIR exists and is not a folder; name a new or empty folder")
    run, data = run_dir.resolve(), data_dir.resolve()
    if run == data or data in run.parents:
        # Sample grids written there would become training images of the next run on DATA_DIR.
        raise RunFolderError(f"{run_dir}: RUN_DIR is or lies inside DATA_DIR {data_dir}; write it elsewhere")
    if run in data.parents:
        raise RunFolderError(f"{run_dir}: RUN_DIR holds DATA_DIR {data_dir}; write the run elsewhere")
    if resume:
        if not (run_dir / CHECKPOINT_FILE).is_file():
            raise RunFolderError(f"{run_dir}: nothing to resume (no {CHECKPOINT_FILE})")
        return
    held = _contents(run_dir)
    if not held or overwrite:
        return
    names = ", ".join(held[:SHOWN_NAMES]) + (", ..." if len(held) > SHOWN_NAMES else "")
    if set(held) & set(RUN_FILES):
        raise RunFolderError(
            f"{run_dir}: holds a run already ({names}); pass --resume to continue it or --overwrite to "
            "delete its model, checkpoint, config, metrics and samples and start over"
        )
    raise RunFolderError(
        f"{run_dir}: RUN_DIR is not empty ({names}); name a new or empty folder, or pass --overwrite to "
        "train there anyway (files other than a run's are kept)"
    )


def check_not_both(run_dir: str | Path, resume: bool, overwrite: bool) -> None:
    """Refuse `resume` with `overwrite`: one continues the run in RUN_DIR, the other deletes it."""
    if resume and overwrite:
        raise RunFolderError(f"{run_dir}: --resume continues its run and --overwrite deletes it; pass one")


def make_run_folder(run_dir: str | Path) -> None:
    """Create RUN_DIR and check that files can be written in it, before any data or network is loaded."""
    try:
        probe_writable(run_dir)
    except OSError as error:
        raise RunFolderError(f"{run_dir}: cannot write the run folder ({error.strerror or error})") from error


def clear_run(run_dir: str | Path) -> None:
    """Delete what an earlier run wrote in RUN_DIR (RUN_FILES and their temp files); other files are kept."""
    for name in RUN_FILES:
        remove(Path(run_dir, name))


def _contents(run_dir: Path) -> list[str]:
    """Names of the entries of RUN_DIR (none if it does not exist), sorted, leftover temp files left out."""
    if not run_dir.is_dir():
        return []
    return sorted(p.name for p in run_dir.iterdir() if not (is_leftover(p) and p.is_file()))
