"""Both color features of an image (paper eq. 4) in one place, plus a readable summary of them."""

from __future__ import annotations

import torch

from memopainter.color.bins import NUM_BINS, ab_bins, ab_distribution
from memopainter.color.palette import dominant_palette

# Value width of each color feature, the one table of it: a 313-bin ab distribution, or 10 RGB colors
# flattened. It sizes the memory's values and the generator's condition.
FEATURE_DIMS = {"dist": NUM_BINS, "rgb": 30}


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


def palette_condition(colors: torch.Tensor, feature: str) -> torch.Tensor:
    """User colors (n, 3) in [0, 1], 1 <= n <= 10 -> the generator's condition (value_dim,) for `feature`.

    "rgb": the colors in the given order, repeated to 10 (as dominant palettes are topped up), flattened.
    "dist": the ab distribution of an image made of the colors in equal areas.
    """
    if colors.dim() != 2 or colors.shape[1] != 3 or not 1 <= colors.shape[0] <= 10:
        raise ValueError(f"palette colors must be shaped (n, 3) with 1 <= n <= 10, got {tuple(colors.shape)}")
    if not colors.is_floating_point() or not bool(((colors >= 0) & (colors <= 1)).all()):
        raise ValueError("palette colors must be floats in [0, 1]")
    if feature == "rgb":
        return colors[torch.arange(10) % colors.shape[0]].reshape(30)
    if feature == "dist":
        return ab_distribution(colors.T[:, None, :])  # one pixel per color: (3, 1, n)
    raise ValueError(f"unknown color feature {feature!r}; expected 'dist' or 'rgb'")
