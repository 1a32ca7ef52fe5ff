"""Per-image features computed once and kept on disk, keyed by the image file's content hash.

Backbone features and color features depend only on the image bytes and the settings that made them, so
training epochs, later runs and other datasets holding the same files reuse them. One safetensors file per
kind of feature; nothing pickled.
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from memopainter.files import atomic_write
from memopainter.paths import cache_root


def file_digest(path: str | Path) -> str:
    """SHA-256 hex digest of a file's content."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class FeatureCache:
    """Features by content hash, one file per `kind` (a string naming the feature and its settings)."""

    def __init__(self, directory: str | Path | None = None) -> None:
        self.directory = Path(directory) if directory is not None else cache_root() / "features"

    def path(self, kind: str) -> Path:
        """The file holding one kind of feature."""
        return self.directory / f"{kind}.safetensors"

    def get(
        self, kind: str, digests: Sequence[str], compute: Callable[[list[int]], torch.Tensor]
    ) -> torch.Tensor:
        """Features (N, ...) for `digests`; `compute(indices)` makes the missing ones, then they are saved."""
        stored = self._load(kind)
        missing: dict[str, int] = {}  # digest -> first index, so duplicate files are computed once
        for i, digest in enumerate(digests):
            if digest not in stored and digest not in missing:
                missing[digest] = i
        if missing:
            fresh = compute(list(missing.values()))
            if fresh.shape[0] != len(missing):
                raise RuntimeError(f"compute returned {fresh.shape[0]} rows for {len(missing)} images")
            stored.update({d: row.contiguous() for d, row in zip(missing, fresh.cpu(), strict=True)})
            self._save(kind, stored)
        return torch.stack([stored[d] for d in digests])

    def _load(self, kind: str) -> dict[str, torch.Tensor]:
        path = self.path(kind)
        if not path.exists():
            return {}
        try:
            return load_file(path)
        except (SafetensorError, OSError) as error:
            # A cache is only a copy: a damaged one is rebuilt rather than trusted.
            warnings.warn(f"{path}: unreadable feature cache ({error}); recomputing", stacklevel=3)
            return {}

    def _save(self, kind: str, stored: dict[str, torch.Tensor]) -> None:
        path = self.path(kind)
        with atomic_write(path) as temp:
            save_file(stored, temp)
