"""Where MemoPainter keeps what it caches: downloaded weights, extracted datasets, computed features."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """$MEMOPAINTER_CACHE, else ($XDG_CACHE_HOME or ~/.cache)/memopainter."""
    if os.environ.get("MEMOPAINTER_CACHE"):
        return Path(os.environ["MEMOPAINTER_CACHE"]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "memopainter"
