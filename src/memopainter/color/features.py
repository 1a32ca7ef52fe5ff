"""Both color features of an image (paper eq. 4) in one place, plus a readable summary of them."""

from __future__ import annotations

import torch

from memopainter.color.bins import ab_bins, ab_distribution
from memopainter.color.palette import dominant_palette

FEATURE_DIMS = {"dist": 313, "rgb": 30}


def color_feature(rgb: torch.Tensor, alpha: torch.Tensor | None, feature: str) -> torch.Tensor:
    """The memory value of one image: (313,) ab distribution ("dist") or (30,) flattened palette ("rgb")."""
    if feature == "dist":
        return ab_distribution(rgb, alpha)
    if feature == "rgb":
        return dominant_palette(rgb, 10, alpha).reshape(-1)
    raise ValueError(f"unknown color feature {feature!r}; expected one of {sorted(FEATURE_DIMS)}")


def to_hex(color: torch.Tensor) -> str:
    """An sRGB color in [0, 1] shaped (3,) as '#rrggbb'."""
    r, g, b = (int(round(float(c) * 255)) for c in color.clamp(0, 1))
    return f"#{r:02x}{g:02x}{b:02x}"


def describe_features(rgb: torch.Tensor, alpha: torch.Tensor | None, colors: int = 10, bins: int = 5) -> dict:
    """A JSON-ready summary: the palette as hex strings and the heaviest ab bins with their mass."""
    palette = dominant_palette(rgb, colors, alpha)
    dist = ab_distribution(rgb, alpha)
    mass, idx = dist.topk(bins)
    centres = ab_bins()
    return {
        "palette": [to_hex(c) for c in palette],
        "ab_bins": [
            {"bin": int(i), "a": float(centres[i, 0]), "b": float(centres[i, 1]), "mass": round(float(m), 4)}
            for m, i in zip(mass, idx, strict=True)
        ],
    }
