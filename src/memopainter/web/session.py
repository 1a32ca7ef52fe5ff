"""The model a server holds: colorize and remember through the library, one request at a time."""

from __future__ import annotations

import base64
import copy
import io
import os
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image

from memopainter.color.features import to_hex
from memopainter.core.model import CHECKPOINT_FILE
from memopainter.data.images import PNG_COMPRESS_LEVEL
from memopainter.data.sequences import Animation, encode_animation
from memopainter.inference import Colorizer, Failed, parse_palette
from memopainter.inference.fullres import gray_preview
from memopainter.inference.inspect import slot_swatch
from memopainter.inference.remember import remember
from memopainter.inference.results import Colored
from memopainter.inference.upsample import DEFAULT_UPSAMPLE

CHECKPOINT_SUFFIX = ".safetensors"
DEFAULT_KEEP_TAUGHT = 20  # checkpoints of about 1.6 MB each: every remember writes one
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")  # names of this machine the page always answers at
# The media type of each animation format in a data: URL (browsers play an APNG served as image/png).
MEDIA_TYPES = {"GIF": "image/gif", "WEBP": "image/webp", "PNG": "image/png"}


@dataclass(frozen=True)
class Coloring:
    """One colorized upload: the gray input and each result encoded, with what conditioned them.

    An animation's are animations in its own format, and its slots, scores and palettes its first frame's.
    """

    gray: bytes
    results: list[bytes]  # top-1 first; one result with a palette
    slots: list[int] | None  # memory slot per result; None with a palette or without memory
    scores: list[float] | None  # cosine similarity of each slot's key to the image's query
    palettes: list[list[str]]  # per result, the colors that conditioned it as '#rrggbb' (empty: none)
    media_type: str = "image/png"  # of gray and results
    extension: str = ".png"  # for their downloads
    frames: int = 1


@dataclass(frozen=True)
class Taught:
    """What remembering one reference did, and the checkpoint file the server now serves."""

    action: str  # "wrote" or "refreshed", as memopainter.inference.remember says
    slot: int
    replaced: str | None
    checkpoint: Path
    removed: list[str]  # names of the oldest taught checkpoints deleted to keep at most keep_taught


class ModelSession:
    """A loaded Colorizer behind a lock: inference and teaching are serialized, the model swapped whole.

    Each remember writes a new '<stem>.taught-<time>.safetensors' beside the loaded checkpoint; only the
    newest `keep_taught` of those are kept. The loaded file is never deleted, whatever its name.
    """

    def __init__(
        self,
        model_path: str | os.PathLike,
        device: str = "cpu",
        weights: str | os.PathLike | None = None,
        keep_taught: int = DEFAULT_KEEP_TAUGHT,
        upsample: str = DEFAULT_UPSAMPLE,
    ) -> None:
        if keep_taught < 1:
            raise ValueError(f"keep_taught must be at least 1, got {keep_taught}")
        self.colorizer = Colorizer.from_pretrained(model_path, device=device, weights=weights)
        self.loaded = self.colorizer.path
        self.keep_taught = keep_taught
        self.upsample = upsample
        self._lock = threading.Lock()

    def info(self) -> dict:
        """A JSON-ready description of the served model."""
        with self._lock:
            colorizer = self.colorizer
            memory = colorizer.model.memory
            return {
                "checkpoint": colorizer.path.name,
                "feature": colorizer.feature,
                "input": colorizer.model.config.data.input,  # "gray" or "lineart"
                "has_memory": colorizer.has_memory,
                "slots_written": memory.num_filled if memory is not None else 0,
                "slots": memory.size if memory is not None else 0,
                "supervised": bool(memory is not None and memory.supervised),
                "classes": list(colorizer.model.class_names),
            }

    def colorize(
        self, rgb: torch.Tensor, alpha: torch.Tensor | None, top_k: int, palette: str | None
    ) -> Coloring:
        """Colorize one image (rgb (3, H, W), alpha (H, W) or None) as `memopainter colorize` does."""
        colors = parse_palette(palette) if palette is not None else None  # (n, 3)
        with self._lock:
            colorizer = self.colorizer
            (result,) = colorizer.colorize_each([(rgb, alpha)], top_k, colors, upsample=self.upsample)
            if isinstance(result, Failed):
                raise result.error
            gray = _gray(result)
            slots, scores, palettes = _conditions(colorizer, result, colors)
            results = [png_bytes(image) for image in result.images]
        return Coloring(png_bytes(gray), results, slots, scores, palettes)

    def colorize_animation(self, animation: Animation, top_k: int, palette: str | None) -> Coloring:
        """Colorize every frame of an animation as one sequence; each result is an animation like it."""
        colors = parse_palette(palette) if palette is not None else None  # (n, 3)
        with self._lock:
            colorizer = self.colorizer
            frames = colorizer.colorize_sequence(animation.frames, top_k, colors, upsample=self.upsample)
            slots, scores, palettes = _conditions(colorizer, frames[0], colors)
        gray = encode_animation([_gray(frame) for frame in frames], animation)
        # One animation per rank: the top-1 colorings of every frame, then the 2nd slot's, ...
        takes = [[frame.images[rank] for frame in frames] for rank in range(len(frames[0].images))]
        results = [encode_animation(take, animation) for take in takes]
        media_type = MEDIA_TYPES[animation.format]
        return Coloring(gray, results, slots, scores, palettes, media_type, animation.suffix, len(frames))

    def remember(
        self, rgb: torch.Tensor, alpha: torch.Tensor | None, name: str, class_name: str | None, replace: bool
    ) -> Taught:
        """Teach a copy of the model one reference, save it, then serve it.

        The copy goes to a new checkpoint file beside the served one, or over the served file itself only
        when `replace` is true; either way atomically. If anything fails the served model is untouched.
        Taught checkpoints past the newest `keep_taught` are deleted once the new one is saved.
        """
        with self._lock:
            served = self.colorizer
            if replace and served.path.name == CHECKPOINT_FILE:
                raise ValueError(
                    f"{served.path.name} is a run's resumable checkpoint: it is never replaced (the taught "
                    "model would lose the training state); remember without replacing"
                )
            taught = served.with_model(copy.deepcopy(served.model), served.path)
            (result,) = remember(taught, [(rgb, alpha)], [name], class_name)
            target = served.path if replace else new_checkpoint_path(served.path)
            taught.model.save(target)
            taught.path = target
            self.colorizer = taught
            removed = [] if replace else prune_taught(target, self.keep_taught, self.loaded)
        return Taught(result.action, result.slot, result.replaced, target, [p.name for p in removed])


def new_checkpoint_path(served: Path) -> Path:
    """A file name beside `served` that does not exist yet: '<stem>.taught-<time>[-n].safetensors'."""
    stem = _base_stem(served)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    candidate = served.with_name(f"{stem}.taught-{stamp}{CHECKPOINT_SUFFIX}")
    n = 1
    while candidate.exists():
        n += 1
        candidate = served.with_name(f"{stem}.taught-{stamp}-{n}{CHECKPOINT_SUFFIX}")
    return candidate


def prune_taught(served: Path, keep_taught: int, loaded: Path) -> list[Path]:
    """Delete all but the newest `keep_taught` taught checkpoints beside `served`; returns those deleted.

    Taught checkpoints are the '<stem>.taught-<time>[-n].safetensors' files new_checkpoint_path names, ordered
    by that time and n (by name alone '-2' would sort before its unnumbered twin). `served` counts as the
    newest whatever the clock did; `loaded`, the file the server started from, is never deleted nor counted.
    """
    stem, suffix = re.escape(_base_stem(served)), re.escape(CHECKPOINT_SUFFIX)
    pattern = re.compile(rf"{stem}\.taught-(\d{{8}}-\d{{6}})(?:-(\d+))?{suffix}")
    spared = {served.resolve(), loaded.resolve()}
    others = []
    for path in served.parent.iterdir():
        if (match := pattern.fullmatch(path.name)) and path.resolve() not in spared:
            others.append(((match[1], int(match[2] or 1)), path))
    others.sort()
    removed = []
    for _, path in others[: max(0, len(others) - (keep_taught - 1))]:
        try:
            path.unlink(missing_ok=True)
        except OSError:
            continue  # one that cannot go stays; the taught model is saved and served either way
        removed.append(path)
    return removed


def _gray(result: Colored) -> Image.Image:
    """The gray input of a colorized image, at its size and with its alpha."""
    return gray_preview(result.prepared)


def _conditions(
    colorizer: Colorizer, result: Colored, colors: torch.Tensor | None
) -> tuple[list[int] | None, list[float] | None, list[list[str]]]:
    """(slots, scores, palettes) that conditioned a result: its memory slots' swatches, or the palette."""
    if result.slots is None:
        return None, None, [[to_hex(c) for c in colors]] if colors is not None else [[]]
    scores = [round(s, 4) for s in result.scores]
    palettes = [[_hex8(c) for c, _ in slot_swatch(colorizer.model, s)] for s in result.slots]
    return result.slots, scores, palettes


def png_bytes(image: Image.Image) -> bytes:
    """A PIL image encoded as PNG, at the compression level colorize writes."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    return buffer.getvalue()


def data_url(encoded: bytes, media_type: str = "image/png") -> str:
    """Image bytes as a data: URL the page can show and download without another request."""
    return f"data:{media_type};base64," + base64.b64encode(encoded).decode("ascii")


def _base_stem(checkpoint: Path) -> str:
    """The name a checkpoint's taught copies share: 'model' for model.safetensors and model.taught-*."""
    return checkpoint.name.removesuffix(CHECKPOINT_SUFFIX).split(".taught-")[0]


def _hex8(color: tuple[int, int, int]) -> str:
    """An 8-bit RGB triple as '#rrggbb'."""
    return "#{:02x}{:02x}{:02x}".format(*color)
