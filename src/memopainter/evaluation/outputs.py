"""Writing result files atomically (a crash never leaves half a file), and PNGs of figures and images."""

from __future__ import annotations

import io
import os
import uuid
from pathlib import Path

from PIL import Image


def write_atomic(path: str | os.PathLike, data: bytes | str) -> Path:
    """Write bytes (or UTF-8 text) to `path` through a hidden temp file in its folder, renamed into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    temp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp")
    try:
        temp.write_bytes(payload)
        os.replace(temp, path)  # same folder, so one file system: the rename is atomic
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return path


def figure_png(figure) -> bytes:
    """A matplotlib Figure rendered by Agg as PNG bytes (pyplot and its global backend are never touched)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def image_png(image: Image.Image) -> bytes:
    """A PIL image as PNG bytes."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()
