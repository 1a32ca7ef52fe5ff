"""Writing files and folders atomically: a reader, or a run killed half-way, sees the old version or the new.

Every file MemoPainter writes (checkpoints, images, JSON, caches, weights) goes through `atomic_write`,
and every folder it builds through `atomic_folder`. Temp names are hidden siblings of the target (same file
system, so the final rename is atomic; image listings skip hidden names): `.NAME.<hex>.tmp` for files and
`.NAME.<hex>.partial` for folders.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_write(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a hidden temp path next to `path`; write it inside the block, and it replaces `path` on success.

    Parent folders are created. The file gets the mode a plain open() would give (the umask's), whatever
    the writer did to the temp file, and reaches the disk before the rename. On any error the temp file is
    removed and `path` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp")
    # Claiming the name with 0o666 lets the umask decide the mode, as open() would; some writers
    # (safetensors, mkstemp) make 0600 files, so the mode is put back after them.
    os.close(os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666))
    try:
        mode = stat.S_IMODE(os.stat(temp).st_mode)
        yield temp
        os.chmod(temp, mode)
        with open(temp, "rb+") as written:
            os.fsync(written.fileno())
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    _fsync_folder(path.parent)


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write `data` to `path` atomically; returns the path."""
    with atomic_write(path) as temp:
        temp.write_bytes(data)
    return Path(path)


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write UTF-8 `text` to `path` atomically; returns the path."""
    return write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike, value) -> Path:
    """Write `value` as indented strict JSON (no NaN or Infinity) atomically; returns the path."""
    return write_text(path, json.dumps(value, indent=2, allow_nan=False) + "\n")


@contextmanager
def atomic_folder(dest: str | os.PathLike) -> Iterator[Path]:
    """Yield a hidden empty folder next to `dest`; fill it in the block, and it replaces `dest` on success.

    A failure or a crash leaves `dest` as it was and, at worst, a hidden `.DEST.<hex>.partial` folder.
    """
    temp = staging_folder(dest)
    try:
        yield temp
        publish_folder(temp, dest)
    finally:
        if temp.exists():
            shutil.rmtree(temp, ignore_errors=True)


def staging_folder(dest: str | os.PathLike) -> Path:
    """A new hidden empty folder next to `dest`, to be filled and then `publish_folder`ed as `dest`."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    temp = dest.parent / f".{dest.name}.{uuid.uuid4().hex[:12]}.partial"
    temp.mkdir()
    return temp


def publish_folder(temp: Path, dest: str | os.PathLike) -> None:
    """Put the filled staging folder `temp` in the place of `dest` (replacing it, a link being unlinked)."""
    dest = Path(dest)
    if dest.is_symlink():
        dest.unlink()  # the link goes, never what it points to
    if dest.exists():
        old = dest.parent / f".{dest.name}.{uuid.uuid4().hex[:12]}.old"
        os.rename(dest, old)
        os.rename(temp, dest)
        shutil.rmtree(old)
    else:
        os.rename(temp, dest)


def remove_leftovers(path: str | os.PathLike) -> list[Path]:
    """Delete the temp files a killed `atomic_write(path)` left next to `path`; returns what was removed."""
    path = Path(path)
    if not path.parent.is_dir():
        return []
    removed = [temp for temp in path.parent.glob(f".{path.name}.*.tmp") if temp.is_file()]
    for temp in removed:
        temp.unlink(missing_ok=True)
    return removed


def is_leftover(path: str | os.PathLike) -> bool:
    """Whether `path` is named as the temp file of an `atomic_write` (`.NAME.<hex>.tmp`), not real content."""
    name = Path(path).name
    return name.startswith(".") and name.endswith(".tmp") and name.count(".") >= 3


def remove(path: str | os.PathLike) -> None:
    """Delete the file, link or folder tree at `path` if there is one, and the temp files of its saves."""
    path = Path(path)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()
    remove_leftovers(path)


def probe_writable(folder: str | os.PathLike) -> Path:
    """Create `folder` (and its parents) and write and delete a temp file in it; returns the folder.

    Raises the OSError a later write would meet (read-only, no permission, a file in the way), so a command
    can refuse before its work rather than after it. The probe is named as a leftover temp file.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    probe = folder / f".write-probe.{uuid.uuid4().hex[:12]}.tmp"
    os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    probe.unlink()
    return folder


def _fsync_folder(folder: Path) -> None:
    """Flush a folder's entry list so a just-renamed file survives a crash (not possible on every OS)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
