"""What every dataset builder shares: errors, the atomic DEST folder, dataset.json, PNGs, cached downloads."""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from memopainter import __version__
from memopainter.data.cache import file_digest
from memopainter.data.images import tensors_to_pil
from memopainter.files import atomic_folder, atomic_write
from memopainter.paths import cache_root

MANIFEST = "dataset.json"

Manifest = dict[str, Any]
Log = Callable[[str], None]


class BuildError(RuntimeError):
    """A dataset cannot be built as asked; the message is one line naming the file or option at fault."""


def downloads_dir() -> Path:
    """Where builders keep what they fetch: cache_root()/downloads."""
    return cache_root() / "downloads"


def quiet(message: str) -> None:
    """The default log of the builders: says nothing."""


def check_separate(src: Path, dest: Path, src_name: str = "SRC") -> None:
    """Refuse a DEST that is, holds or lies inside the source folder (a --force would destroy the source)."""
    src, dest = src.resolve(), dest.resolve()
    if src == dest or src in dest.parents or dest in src.parents:
        raise BuildError(f"{dest}: DEST overlaps {src_name} {src}; write the dataset somewhere else")


@contextmanager
def atomic_dest(dest: Path, force: bool = False) -> Iterator[Path]:
    """Yield a fresh temp folder next to `dest`, renamed to `dest` only when the block succeeds.

    An existing non-empty `dest` is refused unless `force`; it is then replaced only once the new dataset is
    complete. A failure or a crash leaves `dest` as it was and, at worst, a hidden `.DEST.*.partial` folder.
    """
    dest = Path(dest)
    if dest.exists() and not dest.is_dir():
        raise BuildError(f"{dest}: DEST exists and is not a folder")
    if dest.is_dir() and any(dest.iterdir()) and not force:
        raise BuildError(f"{dest}: DEST exists and is not empty; pass --force to replace it")
    with atomic_folder(dest) as temp:
        yield temp


def keep_download(downloaded: Path, cached: Path) -> None:
    """Put a file just fetched into the cache at `cached`, atomically."""
    with atomic_write(cached) as temp:
        # Fetchers download into scratch space beside the cache: this is a rename, not a copy of tens of MB.
        shutil.move(downloaded, temp)


def check_sha256(path: Path, expected: str, what: str, advice: str = "") -> None:
    """Refuse a file whose SHA-256 is not the pinned `expected`; the error names it `what`, then `advice`."""
    digest = file_digest(path)
    if digest != expected:
        raise BuildError(f"{what}: sha256 {digest[:16]}... is not the expected {expected[:16]}...{advice}")


@dataclass(frozen=True)
class Download:
    """A file that a builder fetches once into downloads_dir() with a command such as `npm pack SPEC`."""

    name: str  # what it is, for its scratch folder: "arcade"
    file: str  # the file the command writes, kept under this name
    sha256: str  # pinned: a download with any other is refused, and not kept
    tool: str  # the command: "pip download"
    what: str  # its argument: "arcade==3.3.3"
    size: str  # for the log line: "43 MB"
    offline: str = ""  # ends the errors of the fetch: how to build without it


def fetch_once(download: Download, fetch: Callable[[Path], None], log: Log = quiet) -> Path:
    """downloads_dir()/file, which `fetch` writes into a scratch folder beside the cache on first use; its
    SHA-256 is checked then and on every later use (a cached file can be damaged since)."""
    cached = downloads_dir() / download.file
    if cached.is_file():
        advice = f"; delete it to download it again{download.offline}"
        check_sha256(cached, download.sha256, str(cached), advice)
        return cached
    cached.parent.mkdir(parents=True, exist_ok=True)
    log(f"fetching {download.what} with {download.tool} (about {download.size}, once) into {cached.parent}")
    with tempfile.TemporaryDirectory(dir=cached.parent, prefix=f".{download.name}-") as temp:
        fetch(Path(temp))
        fetched = Path(temp) / download.file
        if not fetched.is_file():
            command = f"{download.tool} {download.what}"
            raise BuildError(f"`{command}` did not produce {download.file}{download.offline}")
        check_sha256(fetched, download.sha256, download.file)
        keep_download(fetched, cached)
    return cached


@contextmanager
def one_torch_thread() -> Iterator[None]:
    """Run torch on one thread inside the block; the previous thread count is restored after it.

    Builders convert many small images one at a time; for tensors that small, handing work to other threads
    costs more than it saves, and on a busy machine it made a 344-image build 20 times slower.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def write_png(path: Path, rgb: torch.Tensor, alpha: torch.Tensor | None) -> None:
    """Write one image of a dataset as an 8-bit RGB or RGBA PNG (alpha kept when the source had it)."""
    # Not save_image: its per-file temp file and fsync make thousands of small files several times slower,
    # and the whole dataset folder is already renamed into place atomically.
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors_to_pil(rgb, alpha).save(path, format="PNG")


def class_counts(root: Path) -> dict[str, int]:
    """Number of PNG files in each sub-folder of `root`, by sorted folder name."""
    return {
        folder.name: sum(1 for f in folder.rglob("*.png") if f.is_file())
        for folder in sorted(root.iterdir())
        if folder.is_dir()
    }


def manifest(
    dataset: str, options: dict[str, Any], classes: dict[str, int], images: int | None = None, **fields: Any
) -> Manifest:
    """A dataset.json body: what was built, from what, under which license, and how.

    `images` is the total when it is not the sum over `classes` (a flat, unlabelled set has no classes).
    """
    return {
        "dataset": dataset,
        **fields,
        "num_classes": len(classes),
        "num_images": sum(classes.values()) if images is None else images,
        "classes": classes,
        "built_by": {"tool": f"memopainter {__version__}", "command": f"data {dataset}", "options": options},
    }


def write_manifest(folder: Path, body: Manifest) -> None:
    """Write `body` as folder/dataset.json (UTF-8, indented, stable key order)."""
    text = json.dumps(body, indent=2, ensure_ascii=False) + "\n"
    (folder / MANIFEST).write_text(text, encoding="utf-8")


def read_manifest(folder: Path) -> Manifest | None:
    """folder/dataset.json as a dict, or None when there is none or it is not a JSON object."""
    path = folder / MANIFEST
    try:
        body = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return body if isinstance(body, dict) else None
