"""The model a server holds: colorize and remember through the library, one request at a time."""

from __future__ import annotations

import base64
import copy
import io
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image

from memopainter.color.features import to_hex
from memopainter.data.images import PNG_COMPRESS_LEVEL
from memopainter.inference import Colorizer, Failed, parse_palette
from memopainter.inference.fullres import recombine
from memopainter.inference.inspect import slot_swatch
from memopainter.inference.remember import remember

CHECKPOINT_SUFFIX = ".safetensors"


@dataclass(frozen=True)
class Coloring:
    """One colorized upload: PNG bytes of the gray input and of each result, with what conditioned them."""

    gray: bytes
    results: list[bytes]  # top-1 first; one result with a palette
    slots: list[int] | None  # memory slot per result; None with a palette or without memory
    scores: list[float] | None  # cosine similarity of each slot's key to the image's query
    palettes: list[list[str]]  # per result, the colors that conditioned it as '#rrggbb' (empty: none)


@dataclass(frozen=True)
class Taught:
    """What remembering one reference did, and the checkpoint file the server now serves."""

    action: str  # "wrote" or "refreshed", as memopainter.inference.remember says
    slot: int
    replaced: str | None
    checkpoint: Path


class ModelSession:
    """A loaded Colorizer behind a lock: inference and teaching are serialized, the model swapped whole."""

    def __init__(
        self, model_path: str | os.PathLike, device: str = "cpu", weights: str | os.PathLike | None = None
    ) -> None:
        self.colorizer = Colorizer.from_pretrained(model_path, device=device, weights=weights)
        self._lock = threading.Lock()

    def info(self) -> dict:
        """A JSON-ready description of the served model."""
        with self._lock:
            colorizer = self.colorizer
            memory = colorizer.memopainter.memory
            return {
                "checkpoint": colorizer.path.name,
                "feature": colorizer.feature,
                "has_memory": colorizer.has_memory,
                "slots_written": memory.num_filled if memory is not None else 0,
                "slots": memory.size if memory is not None else 0,
                "supervised": bool(memory is not None and memory.supervised),
                "classes": list(colorizer.memopainter.class_names),
            }

    def colorize(
        self, rgb: torch.Tensor, alpha: torch.Tensor | None, top_k: int, palette: str | None
    ) -> Coloring:
        """Colorize one image (rgb (3, H, W), alpha (H, W) or None) as `memopainter colorize` does."""
        colors = parse_palette(palette) if palette is not None else None  # (n, 3)
        with self._lock:
            colorizer = self.colorizer
            (result,) = colorizer.colorize_each([(rgb, alpha)], top_k, colors)
            if isinstance(result, Failed):
                raise result.error
            prepared = result.prepared
            gray = recombine(prepared, torch.zeros(2, *prepared.net_gray.shape[1:]))  # a = b = 0: the input
            if result.slots is not None:
                slots, scores = result.slots, [round(s, 4) for s in result.scores]
                memopainter = colorizer.memopainter
                palettes = [[_hex8(c) for c, _ in slot_swatch(memopainter, s)] for s in slots]
            else:
                slots = scores = None
                palettes = [[to_hex(c) for c in colors]] if colors is not None else [[]]
            results = [png_bytes(image) for image in result.images]
        return Coloring(png_bytes(gray), results, slots, scores, palettes)

    def remember(
        self, rgb: torch.Tensor, alpha: torch.Tensor | None, name: str, class_name: str | None, replace: bool
    ) -> Taught:
        """Teach a copy of the model one reference, save it, then serve it.

        The copy goes to a new checkpoint file beside the served one, or over the served file itself only
        when `replace` is true; either way atomically. If anything fails the served model is untouched.
        """
        with self._lock:
            served = self.colorizer
            taught = served.with_memopainter(copy.deepcopy(served.memopainter), served.path)
            (result,) = remember(taught, [(rgb, alpha)], [name], class_name)
            target = served.path if replace else new_checkpoint_path(served.path)
            taught.memopainter.save(target)
            taught.path = target
            self.colorizer = taught
        return Taught(result.action, result.slot, result.replaced, target)


def new_checkpoint_path(served: Path) -> Path:
    """A file name beside `served` that does not exist yet: '<stem>.taught-<time>[-n].safetensors'."""
    stem = served.name.removesuffix(CHECKPOINT_SUFFIX).split(".taught-")[0]
    stamp = time.strftime("%Y%m%d-%H%M%S")
    candidate = served.with_name(f"{stem}.taught-{stamp}{CHECKPOINT_SUFFIX}")
    n = 1
    while candidate.exists():
        n += 1
        candidate = served.with_name(f"{stem}.taught-{stamp}-{n}{CHECKPOINT_SUFFIX}")
    return candidate


def png_bytes(image: Image.Image) -> bytes:
    """A PIL image encoded as PNG, at the compression level colorize writes."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    return buffer.getvalue()


def data_url(png: bytes) -> str:
    """PNG bytes as a data: URL the page can show and download without another request."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _hex8(color: tuple[int, int, int]) -> str:
    """An 8-bit RGB triple as '#rrggbb'."""
    return "#{:02x}{:02x}{:02x}".format(*color)
