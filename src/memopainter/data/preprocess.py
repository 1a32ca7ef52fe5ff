"""Turning an image of any size and aspect ratio into what the networks and the query backbone see."""

from __future__ import annotations

import functools

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
    if max(h, w) == size:  # already the size: pad, nothing to resample
        top, left = (size - h) // 2, (size - w) // 2
        padded = torch.ones(4, size, size, dtype=rgb.dtype)
        padded[3] = 0.0
        padded[:3, top : top + h, left : left + w] = rgb
        padded[3, top : top + h, left : left + w] = alpha
        return padded[:3].clamp(0.0, 1.0), padded[3].clamp(0.0, 1.0)
    small = shrink_padded(torch.cat([rgb * alpha, alpha[None]]), size).clamp(0.0, 1.0)  # (4, S, S)
    return unpremultiply(small[:3], small[3]), small[3]


def shrink_padded(premultiplied: torch.Tensor, size: int) -> torch.Tensor:
    """Premultiplied channels (C, H, W), centred on a transparent square of side max(H, W), resized to
    (C, size, size) with antialiased bilinear filtering: F.interpolate of the padded square, without it.

    The padding is zero in every premultiplied channel, so it adds nothing: each axis is one weight matrix
    over the image's own samples, and memory grows with the image, never with the square of its longer side
    (a 20000 x 1 strip would otherwise ask for gigabytes).
    """
    _, h, w = premultiplied.shape
    side = max(h, w)
    rows = axis_weights(h, (side - h) // 2, side, size)  # (S, H)
    cols = axis_weights(w, (side - w) // 2, side, size)  # (S, W)
    return rows @ premultiplied.to(torch.float32) @ cols.T  # (C, S, S)


@functools.lru_cache(maxsize=64)
def axis_weights(length: int, offset: int, side: int, size: int) -> torch.Tensor:
    """(size, length) weights: one axis of F.interpolate(mode="bilinear", antialias=True) from `side` to
    `size` samples, kept to the `length` samples from `offset`.

    The formula is ATen's (_compute_indices_min_size_weights_aa): a triangle filter stretched by the scale
    when shrinking, its taps normalised to sum to 1. Only the nonzero band is computed, never a side x side
    matrix.
    """
    scale = side / size
    support = scale if scale >= 1.0 else 1.0
    invscale = 1.0 / scale if scale >= 1.0 else 1.0
    center = scale * (torch.arange(size, dtype=torch.float64) + 0.5)  # (S,)
    low = (center - support + 0.5).floor().clamp(min=0)  # (S,) ATen truncates; both are >= 0 here
    high = (center + support + 0.5).floor().clamp(max=side)  # (S,)
    taps = int((high - low).max()) if size else 0
    source = low[:, None] + torch.arange(taps, dtype=torch.float64)  # (S, taps)
    weight = (1.0 - ((source - center[:, None] + 0.5) * invscale).abs()).clamp(min=0.0)
    weight = torch.where(source < high[:, None], weight, 0.0)
    weight = weight / weight.sum(1, keepdim=True).clamp(min=1e-300)
    weights = torch.zeros(size, length, dtype=torch.float64)
    kept = (source >= offset) & (source < offset + length)
    rows = torch.arange(size)[:, None].expand(-1, taps)
    weights.index_put_((rows[kept], (source[kept] - offset).long()), weight[kept], accumulate=True)
    return weights.to(torch.float32)


def unpremultiply(rgb: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """Premultiplied color (C, H, W) in [0, 1] -> straight color; white where nothing is visible."""
    visible = alpha > 0
    return torch.where(visible, rgb / torch.where(visible, alpha, 1.0), 1.0).clamp(0.0, 1.0)


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
    return unpremultiply(small[:3], small[3]), small[3]


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
