"""What colorizing returns: a batch's prediction; per input, its colorings or why it failed."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from PIL import Image

from memopainter.data.images import ImageLoadError
from memopainter.inference.fullres import PreparedImage, recombine

# What one bad image can raise on its way through: it fails alone, the batch goes on.
IMAGE_ERRORS = (ImageLoadError, OSError, MemoryError, RuntimeError, ValueError)
# ...and what one bad input can raise as it is read: an array or tensor of a type we do not take, too.
INPUT_ERRORS = (*IMAGE_ERRORS, TypeError)


@dataclass
class Prediction:
    """The network-sized result of a batch: ab per image and per memory slot, and which slots were used."""

    ab: torch.Tensor  # (B, k, 2, S, S) in Lab units
    slots: torch.Tensor | None  # (B, k) memory slots, best first; None with a palette or without memory
    scores: torch.Tensor | None  # (B, k) cosine similarity of each slot's key to the image's query
    lightness: torch.Tensor | None = None  # (B, k, 1, S, S) L / 100 of a line-art model; None: the input's

    def images(self, i: int, prepared: PreparedImage, upsample: str) -> list[Image.Image]:
        """Image i's colorings at its full size, best first."""
        lightness = [None] * self.ab.shape[1] if self.lightness is None else self.lightness[i]
        return [recombine(prepared, ab, upsample, L) for ab, L in zip(self.ab[i], lightness, strict=True)]


@dataclass
class Colored:
    """One image colorized by `colorize_each`: its colorings at its own size, and what conditioned them."""

    source: object  # the input as given (a path, for files)
    prepared: PreparedImage
    images: list[Image.Image]  # top-k colorings, best first (one with a palette)
    slots: list[int] | None  # memory slot per coloring; None with a palette, a condition or no memory
    scores: list[float] | None  # cosine similarity of each slot's key to the image's query
    rgb: torch.Tensor | None = None  # (3, H, W) the input, kept only when colorize_each was asked to
    alpha: torch.Tensor | None = None  # (H, W) or None


@dataclass
class Failed:
    """One input `colorize_each` could not colorize, and why."""

    source: object
    error: BaseException
