"""Full resolution in and out: an image of any size becomes network-sized gray squares, and the network's ab
becomes a full-size image again, recombined with the input's own full-resolution lightness.

The networks see the image as training did (`fit_square`): padded to a centred square with transparent white,
resized with antialiasing, composited on white. Only the lightness of the input is used, so a color frame
is colorized afresh. On the way back, the square's ab is cropped to the image's region and bilinearly
upsampled in one separable step, then joined with the input's L and converted to 8-bit sRGB; alpha is passed
through. The full-size work runs over row chunks in float32, so memory grows with one image, not with
every temporary of a whole-image Lab conversion.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from memopainter.color import lab_to_rgb, rgb_to_lab
from memopainter.color.lab import linear_to_srgb, srgb_to_linear
from memopainter.data.images import aspect_problem
from memopainter.data.preprocess import L_SCALE, shrink_padded, unpremultiply
from memopainter.inference.regions import region_mean_ab
from memopainter.inference.upsample import DEFAULT_UPSAMPLE, joint_bilateral, network_coordinates

# Pixels per row chunk of full-size work: about 12 MB per 3-channel float32 temporary. Small chunks would
# multiply the number of torch calls, each of which can wait milliseconds for its threads on a busy machine.
CHUNK_PIXELS = 1 << 20
AB_MIN, AB_MAX = -128.0, 127.0  # the Lab range; unbounded ab gives visible artifacts in saturated areas
# Relative luminance Y of linear sRGB (the Y row of the sRGB -> XYZ matrix that color.lab uses; white Y = 1)
# and CIE L = 116 f(Y) - 16, with f linear below (6/29)^3.
_Y_FROM_LINEAR = (0.212671, 0.715160, 0.072169)
_EPSILON = (6.0 / 29.0) ** 3
_SLOPE = 1.0 / (3.0 * (6.0 / 29.0) ** 2)


@dataclass
class PreparedImage:
    """One input reduced to what inference needs; the full-size color image itself is no longer kept."""

    lightness: torch.Tensor  # (H, W) float32 CIE L in [0, 100] of the input, full resolution
    alpha: np.ndarray | None  # (H, W) uint8, passed through to the output untouched; None when opaque
    net_gray: torch.Tensor  # (1, S, S) L / 100 of the padded square on white: the generator's input
    backbone_rgb: torch.Tensor | None  # (3, s, s) the square as gray sRGB: the query backbone's input
    extracted: bool = False  # for a line-art model: the input was not line art, its lines were extracted
    # Drawn line art: the regions touching the border (the paper around the figure, and what its open
    # outlines let in) keep their guided colors instead of one mean in the region upsampling.
    open_paper: bool = False

    @property
    def size(self) -> tuple[int, int]:
        """(height, width) of the input and of every output made from it."""
        h, w = self.lightness.shape
        return h, w


def prepare_image(
    rgb: torch.Tensor, alpha: torch.Tensor | None, net_size: int, backbone_size: int | None
) -> PreparedImage:
    """rgb (3, H, W) and alpha (H, W) or None in [0, 1] -> full-size L and alpha, network-sized squares."""
    if rgb.dim() != 3 or rgb.shape[0] != 3 or rgb.shape[1] < 1 or rgb.shape[2] < 1:
        raise ValueError(f"rgb must be shaped (3, H, W) with H, W >= 1, got {tuple(rgb.shape)}")
    if alpha is not None and alpha.shape != rgb.shape[1:]:
        expected, got = tuple(rgb.shape[1:]), tuple(alpha.shape)
        raise ValueError(f"alpha must be shaped {expected} to match rgb, got {got}")
    _, h, w = rgb.shape
    problem = aspect_problem(h, w)
    if problem is not None:
        raise ValueError(f"image of {problem}")
    lightness = torch.empty(h, w, dtype=torch.float32)
    # The image as fit_square premultiplies it, gray only: channel 0 gray x alpha, channel 1 alpha. One gray
    # channel instead of three keeps big inputs affordable; shrink_padded adds the transparent padding.
    content = torch.empty(2, h, w, dtype=torch.float32)
    for r0, r1 in _row_chunks(h, w):
        # Only the luminance is needed: one channel through the curves instead of a full Lab round trip.
        linear = srgb_to_linear(rgb[:, r0:r1].to(torch.float32))  # (3, r, W)
        luminance = sum(c * channel for c, channel in zip(_Y_FROM_LINEAR, linear, strict=True))  # (r, W)
        lightness[r0:r1] = _lightness(luminance)
        gray = linear_to_srgb(luminance).clamp_(0.0, 1.0)  # the neutral gray of that lightness
        a = alpha[r0:r1].to(torch.float32) if alpha is not None else None
        content[0, r0:r1] = gray if a is None else gray * a
        content[1, r0:r1] = 1.0 if a is None else a
    net_white = _on_white(content, net_size)  # (S, S)
    net_gray = rgb_to_lab(net_white.expand(3, -1, -1))[:1] / L_SCALE  # (1, S, S)
    backbone_rgb = None
    if backbone_size is not None:
        # Already a neutral gray: the rgb_to_gray that backbone_input applies would move it by < 1e-4.
        backbone_rgb = _on_white(content, backbone_size).expand(3, -1, -1)
    alpha_u8 = None
    if alpha is not None:
        alpha_u8 = alpha.to(torch.float32).clamp(0.0, 1.0).mul(255.0).round().to(torch.uint8).numpy()
    return PreparedImage(lightness, alpha_u8, net_gray, backbone_rgb)


def gray_preview(prepared: PreparedImage) -> Image.Image:
    """The input as the model sees it (its lightness, or line art), at full size with its alpha: no color."""
    return recombine(prepared, torch.zeros(2, *prepared.net_gray.shape[1:]), "bilinear")  # a = b = 0


def recombine(
    prepared: PreparedImage,
    ab: torch.Tensor,
    upsample: str = DEFAULT_UPSAMPLE,
    lightness: torch.Tensor | None = None,
) -> Image.Image:
    """The network's ab (2, S, S) in Lab units on the padded square -> the colorized image at full size.

    `upsample` is one of upsample.UPSAMPLERS. RGB for an opaque input, RGBA (the input's alpha, untouched)
    otherwise. Runs on ab's device. `lightness` (1, S, S), L / 100, is a line-art model's: the input (line
    art) then holds no shading, so the color takes this lightness, brought to full size as ab is, and is
    multiplied by the line art, as a colorist's flat fills lie under the ink: the lines stay dark and crisp.
    """
    h, w = prepared.size
    channels = 3 if prepared.alpha is None else 4
    out = np.empty((h, w, channels), dtype=np.uint8)
    color = ab if lightness is None else torch.cat([ab, lightness.to(ab) * L_SCALE])  # (2 or 3, S, S)
    for r0, r1, rows in _full_size_ab(prepared, color.to(torch.float32), upsample):
        L = prepared.lightness[r0:r1].to(ab.device)  # (r, W)
        fill_L = L if lightness is None else rows[2].clamp_(0.0, L_SCALE)
        ab_rows = rows[:2].clamp_(AB_MIN, AB_MAX)
        rgb = into_gamut(lab_to_rgb(torch.cat([fill_L[None], ab_rows]), clip=False))  # (3, r, W) in [0, 1]
        if lightness is not None:
            rgb.mul_(_gray(L))  # multiplied by the ink: white paper keeps the fill, black lines stay black
        out[r0:r1, :, :3] = rgb.mul_(255.0).round_().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    if prepared.alpha is not None:
        out[:, :, 3] = prepared.alpha
    return Image.fromarray(out, mode="RGB" if channels == 3 else "RGBA")


def _full_size_ab(prepared: PreparedImage, ab: torch.Tensor, upsample: str) -> Iterator[tuple]:
    """(r0, r1, ab (C, r, W)) row block by row block, for C channels (ab, or ab and L): upsampled, guided
    by the input's L where asked; the region mode needs every row before it can yield the first."""
    h, w = prepared.size
    side, size = max(h, w), ab.shape[-1]
    device = ab.device
    top, left = (side - h) // 2, (side - w) // 2
    rows = region_weights(h, top, side, size).to(device)  # (H, S)
    cols = region_weights(w, left, side, size).to(device)  # (W, S)
    ab_cols = ab @ cols.T  # (2, S, W): columns first, the smaller product
    net_lightness = prepared.net_gray[0].to(device) * L_SCALE  # (S, S)
    row_at = network_coordinates(h, top, side, size).to(device)  # (H,)
    col_at = network_coordinates(w, left, side, size).to(device)  # (W,)
    blocks = []
    for r0, r1 in _row_chunks(h, w):
        ab_rows = torch.matmul(rows[r0:r1], ab_cols)  # (2, r, W)
        if upsample != "bilinear":
            L = prepared.lightness[r0:r1].to(device)  # (r, W)
            ab_rows = joint_bilateral(ab, net_lightness, L, row_at[r0:r1], col_at, ab_rows)
        if upsample != "region":
            yield r0, r1, ab_rows
        else:
            blocks.append(ab_rows)
    if blocks:
        alpha = None if prepared.alpha is None else torch.from_numpy(prepared.alpha)
        whole = torch.cat(blocks, dim=1).cpu()
        whole = region_mean_ab(whole, prepared.lightness, alpha, prepared.open_paper).to(device)
        del blocks
        for r0, r1 in _row_chunks(h, w):  # converted block by block, as the other modes
            yield r0, r1, whole[:, r0:r1]


def into_gamut(rgb: torch.Tensor) -> torch.Tensor:
    """Unclipped sRGB (3, ...) -> in [0, 1], each out-of-gamut color moved toward the neutral gray of the same
    luminance, in linear RGB, just far enough: its CIE L is kept exactly and its hue nearly.

    Clipping each channel instead would change L: black line art would lift toward the predicted hue and
    white paper would darken wherever the network predicts the slightest color.
    """
    outside = ((rgb < 0) | (rgb > 1)).any(0)  # (...)
    if not bool(outside.any()):
        return rgb
    linear = srgb_to_linear(rgb[:, outside])  # (3, n); the curves extend past [0, 1] invertibly
    luminance = sum(c * channel for c, channel in zip(_Y_FROM_LINEAR, linear, strict=True)).clamp(0.0, 1.0)
    away = linear - luminance  # (3, n) from the gray (Y, Y, Y), which has the same luminance
    # The largest step t <= 1 along the gray -> color line that keeps every channel in [0, 1].
    room = torch.where(away > 0, 1.0 - luminance, luminance) / away.abs().clamp(min=1e-12)  # (3, n)
    step = room.amin(0).clamp(max=1.0)  # (n,)
    rgb = rgb.clone()
    rgb[:, outside] = linear_to_srgb(luminance + step * away)
    return rgb.clamp_(0.0, 1.0)  # float rounding only


def region_weights(length: int, offset: int, side: int, size: int) -> torch.Tensor:
    """Bilinear weights (length, size) that upsample one axis of a size-long signal over the padded side
    and keep the `length` samples from `offset`: interpolate(..., align_corners=False) then crop, as a matrix.
    """
    scale = size / side
    src = ((torch.arange(length, dtype=torch.float64) + offset + 0.5) * scale - 0.5).clamp(min=0.0)
    i0 = src.floor().long().clamp(max=size - 1)
    i1 = (i0 + 1).clamp(max=size - 1)
    frac = (src - i0).to(torch.float32)
    weights = torch.zeros(length, size, dtype=torch.float32)
    index = torch.arange(length)
    weights.index_put_((index, i0), 1.0 - frac, accumulate=True)
    weights.index_put_((index, i1), frac, accumulate=True)
    return weights


def _on_white(content: torch.Tensor, size: int) -> torch.Tensor:
    """Premultiplied (2, H, W) gray and alpha, padded to a square and resized to (size, size) as fit_square
    does, then composited on white."""
    gray, alpha = shrink_padded(content, size).clamp(0.0, 1.0).unbind(0)
    return unpremultiply(gray, alpha) * alpha + (1.0 - alpha)  # (size, size)


def _lightness(luminance: torch.Tensor) -> torch.Tensor:
    """Relative luminance Y in [0, 1] -> CIE L in [0, 100]."""
    cube_root = luminance.clamp(min=_EPSILON).pow(1.0 / 3.0)
    f = torch.where(luminance > _EPSILON, cube_root, _SLOPE * luminance + 4.0 / 29.0)
    return f.mul_(116.0).sub_(16.0)


def _gray(lightness: torch.Tensor) -> torch.Tensor:
    """CIE L in [0, 100] -> the sRGB value in [0, 1] of the neutral gray of that lightness."""
    f = (lightness + 16.0) / 116.0
    luminance = torch.where(f > 6.0 / 29.0, f.pow(3), (f - 4.0 / 29.0) / _SLOPE)
    return linear_to_srgb(luminance.clamp_(0.0, 1.0))


def _row_chunks(h: int, w: int) -> list[tuple[int, int]]:
    """Row ranges of about CHUNK_PIXELS pixels each covering 0..h."""
    step = max(1, CHUNK_PIXELS // max(w, 1))
    return [(r0, min(r0 + step, h)) for r0 in range(0, h, step)]
