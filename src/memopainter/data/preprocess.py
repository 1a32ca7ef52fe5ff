"""Turning an image of any size and aspect ratio into what the networks and the query backbone see."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from memopainter.color import lab_to_rgb, rgb_to_gray, rgb_to_lab
from memopainter.data.images import composite_on_white

L_SCALE = 100.0  # the generator sees L / 100 in [0, 1]
AB_SCALE = 110.0  # and predicts ab / 110 in [-1, 1] (tanh)


def fit_square(rgb: torch.Tensor, alpha: torch.Tensor | None, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad (3, H, W) to a centred square with transparent white, then resize to (3, size, size).

    Returns the resized image and its alpha (size, size); padding is transparent, so the color features
    and the masked metrics ignore it, while the networks see it as white like any transparent pixel.
    """
    _, h, w = rgb.shape
    if alpha is None:
        alpha = torch.ones(h, w, dtype=rgb.dtype)
    side = max(h, w)
    top, left = (side - h) // 2, (side - w) // 2
    padded = torch.ones(4, side, side, dtype=rgb.dtype)
    padded[3] = 0.0
    padded[:3, top : top + h, left : left + w] = rgb
    padded[3, top : top + h, left : left + w] = alpha
    if side != size:
        return resize_rgba(padded[:3], padded[3], (size, size))
    return padded[:3].clamp(0.0, 1.0), padded[3].clamp(0.0, 1.0)


def resize_rgba(
    rgb: torch.Tensor, alpha: torch.Tensor, size: tuple[int, int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Resize rgb (3, H, W) and alpha (H, W) to size (h, w), filtering premultiplied color.

    Premultiplying keeps whatever RGB is stored under alpha 0 (often a leftover color) out of the visible
    pixels it is blended into; pixels that end up fully transparent are white.
    """
    stacked = torch.cat([rgb * alpha, alpha[None]])  # (4, H, W)
    # antialias: sprites are often shrunk several times, and plain bilinear would alias their line art.
    small = F.interpolate(stacked[None], size=size, mode="bilinear", antialias=True, align_corners=False)[0]
    small = small.clamp(0.0, 1.0)
    out_alpha = small[3]
    visible = out_alpha > 0
    out_rgb = torch.where(visible, small[:3] / torch.where(visible, out_alpha, 1.0), 1.0).clamp(0.0, 1.0)
    return out_rgb, out_alpha


def network_input(
    rgb: torch.Tensor, alpha: torch.Tensor | None, size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The generator's input and target: L / 100 (1, S, S) and ab / 110 (2, S, S), transparency on white."""
    square, square_alpha = fit_square(rgb, alpha, size)
    lab = rgb_to_lab(composite_on_white(square, square_alpha))
    return lab[:1] / L_SCALE, lab[1:] / AB_SCALE


def backbone_input(rgb: torch.Tensor, alpha: torch.Tensor | None, size: int) -> torch.Tensor:
    """The query backbone's input: the lightness as gray sRGB (3, size, size), transparency on white."""
    square, square_alpha = fit_square(rgb, alpha, size)
    return rgb_to_gray(composite_on_white(square, square_alpha)).clamp(0.0, 1.0)


def lab_image(gray: torch.Tensor, ab: torch.Tensor) -> torch.Tensor:
    """L / 100 (B, 1, H, W) and ab in Lab units (B, 2, H, W) -> sRGB (B, 3, H, W) in [0, 1]."""
    # Clamp ab to the Lab range before converting: unbounded ab gives visible artifacts in saturated areas.
    return lab_to_rgb(torch.cat([gray * L_SCALE, ab.clamp(-128.0, 127.0)], dim=1))
