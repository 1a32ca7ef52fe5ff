"""Bringing the network's ab up to the input's full resolution.

"bilinear" interpolates the ab of the padded square. Colors then blur across every outline by about one
network pixel: 8 px at every line of a 512-px frame colored at 64 px.

"guided" is joint bilateral upsampling (Kopf et al., SIGGRAPH 2007) with the input's own full-resolution
lightness as the guide: each output pixel averages the 4 x 4 nearest network-resolution ab samples, each
weighted by its distance and by how close its lightness is to the pixel's own. A pixel on one side of a line
takes the colors of the samples on its side, so colors stop at the lines the lightness draws.

"region" is "guided" followed by inference.regions: each flat region of the drawing takes one color.
"""

from __future__ import annotations

import torch

UPSAMPLERS = ("bilinear", "guided", "region")  # region: guided, then one color per flat region
DEFAULT_UPSAMPLE = "region"  # measured best on Kenney, Wesnoth, emoji and OpenMoji (README, Full resolution)
# Hard-coded, not options: a spatial sigma of one network pixel is the footprint a sample covers, and an L
# difference of 8 is above the shading within one flat region and below the step at a drawn line.
SIGMA_SPACE = 1.0  # network pixels
SIGMA_RANGE = 8.0  # CIE L units
_TAPS = (-1, 0, 1, 2)  # offsets from the sample below-left of the output pixel: a 4 x 4 window
_FALLBACK = 1e-6  # weight of the bilinear value, so a pixel unlike all its samples still gets a color


def network_coordinates(length: int, offset: int, side: int, size: int) -> torch.Tensor:
    """Position of each of `length` full-size pixels from `offset` on the size-long network axis
    (align_corners=False, as F.interpolate and region_weights place them)."""
    return (torch.arange(length, dtype=torch.float32) + offset + 0.5) * (size / side) - 0.5


def joint_bilateral(
    ab: torch.Tensor,
    net_lightness: torch.Tensor,
    lightness: torch.Tensor,
    rows: torch.Tensor,
    cols: torch.Tensor,
    bilinear: torch.Tensor,
) -> torch.Tensor:
    """ab (2, S, S) and its lightness (S, S) at network size -> ab (2, r, W) for a block of full-size pixels.

    `lightness` (r, W) is the block's own CIE L, `rows` (r,) and `cols` (W,) its network coordinates, and
    `bilinear` (2, r, W) its bilinear ab, taken where no sample's lightness is near the pixel's.
    """
    size = ab.shape[-1]
    base_r, base_c = rows.floor().long(), cols.floor().long()
    total = torch.full_like(lightness, _FALLBACK)  # (r, W)
    out = bilinear * _FALLBACK  # (2, r, W)
    for dr in _TAPS:
        r = (base_r + dr).clamp(0, size - 1)  # (r,)
        near_r = torch.exp(-((rows - r) ** 2) / (2 * SIGMA_SPACE**2))  # (r,)
        l_rows, ab_rows = net_lightness.index_select(0, r), ab.index_select(1, r)  # (r, S), (2, r, S)
        for dc in _TAPS:
            c = (base_c + dc).clamp(0, size - 1)  # (W,)
            near_c = torch.exp(-((cols - c) ** 2) / (2 * SIGMA_SPACE**2))  # (W,)
            # Two 1-D selections, not one 2-D gather: rows and columns of a tap are independent.
            weight = (lightness - l_rows.index_select(1, c)).square_().mul_(-0.5 / SIGMA_RANGE**2).exp_()
            weight.mul_(near_r[:, None]).mul_(near_c[None, :])  # (r, W)
            out.addcmul_(weight, ab_rows.index_select(2, c))
            total += weight
    return out / total
