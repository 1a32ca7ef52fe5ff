"""Hue rotation of a training image together with its color feature: the same gray image, other colors.

A rotation of the ab plane keeps L, and so the gray input, exactly as it is, while every color turns by the
same hue angle. Trained on rotated pairs, the generator can only get the colors right by reading them off
its color condition: without this, a generator that fits a few hundred frames learns their colors from
their gray appearance, and at test time ignores the condition the memory retrieves for an unseen frame.
The memory itself always stores the true, unrotated colors.
"""

from __future__ import annotations

import torch

from memopainter.color import lab_to_rgb, rgb_to_lab
from memopainter.color.bins import NUM_BINS, ab_bins, soft_encode_sparse

INTERPOLATION_NEIGHBOURS = 4  # bins that share a turned centre's mass: the ones around it on the grid
INTERPOLATION_SIGMA = 2.5  # ab units, a quarter of the 10-unit bin spacing


def rotation_matrices(angles: torch.Tensor) -> torch.Tensor:
    """Counter-clockwise rotations of the ab plane: angles (B,) in radians -> (B, 2, 2)."""
    cos, sin = angles.cos(), angles.sin()
    return torch.stack([torch.stack([cos, -sin], -1), torch.stack([sin, cos], -1)], -2)


def rotate_ab(ab: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
    """ab (B, 2, H, W) in any units turned by angles (B,): chroma kept, hue + angle; 0 leaves it as is."""
    return torch.einsum("bij,bjhw->bihw", rotation_matrices(angles).to(ab.dtype), ab)


def rotate_distribution(dist: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
    """ab distributions (B, 313) turned by angles (B,): each bin's mass moves to its turned centre.

    The turned centre's mass is shared among the bins around it by a narrow Gaussian (a quarter of the bin
    spacing), an interpolation: angle 0 gives the distribution back unblurred, where the soft encoding of
    pixels (sigma 5) would spread it once more. Turned centres outside the 313 in-gamut bins land on the
    nearest ones.
    """
    centres = ab_bins(dist.dtype, dist.device)  # (313, 2)
    turned = torch.einsum("bij,qj->bqi", rotation_matrices(angles).to(dist.dtype), centres)  # (B, 313, 2)
    weights, idx = soft_encode_sparse(turned, INTERPOLATION_NEIGHBOURS, INTERPOLATION_SIGMA)  # (B, 313, 4)
    moved = torch.zeros_like(dist).scatter_add(1, idx.flatten(1), (weights * dist[:, :, None]).flatten(1))
    return moved / moved.sum(1, keepdim=True)  # (B, 313)


def rotate_palette(palette: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
    """Flattened palettes (B, 30) of sRGB in [0, 1] turned by angles (B,) in Lab, clipped to sRGB."""
    colors = palette.reshape(palette.shape[0], -1, 3).transpose(1, 2)  # (B, 3, 10): a 1 x 10 image each
    lab = rgb_to_lab(colors[..., None])[..., 0]  # (B, 3, 10)
    ab = rotate_ab(lab[:, 1:, :, None], angles)[..., 0]  # (B, 2, 10)
    rgb = lab_to_rgb(torch.cat([lab[:, :1], ab], 1)[..., None])[..., 0].clamp(0.0, 1.0)  # (B, 3, 10)
    return rgb.transpose(1, 2).reshape(palette.shape)


def rotate_feature(color: torch.Tensor, feature: str, angles: torch.Tensor) -> torch.Tensor:
    """The color feature (B, value_dim) of `feature` ("dist" or "rgb") of images turned by angles (B,)."""
    if feature == "dist" and color.shape[1] == NUM_BINS:
        return rotate_distribution(color, angles)
    if feature == "rgb" and color.shape[1] == 30:
        return rotate_palette(color, angles)
    raise ValueError(f"rotate_feature: no {feature!r} feature of shape {tuple(color.shape)}")


def draw_rotations(batch: int, share: float, generator: torch.Generator) -> torch.Tensor:
    """Angles (batch,) in radians: uniform in [0, 2 pi) for a `share` of the images, 0 for the others."""
    turn = torch.rand(batch, generator=generator) < share
    return torch.rand(batch, generator=generator) * (2 * torch.pi) * turn
