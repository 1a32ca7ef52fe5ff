"""PNG bytes of figures and images, for result files written with memopainter.files."""

from __future__ import annotations

import io

from PIL import Image


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
