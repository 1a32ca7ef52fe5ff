"""sRGB <-> CIE Lab (D65 white, 2 degree observer), vectorized and differentiable.

Images carry their channels at dim -3: (3, H, W) or (B, 3, H, W), or any leading batch dims.
The constants are scikit-image's (its `rgb2lab` is the independent reference in the tests).
"""

from __future__ import annotations

import torch

# Linear sRGB -> XYZ, rows X, Y, Z (scikit-image's `xyz_from_rgb`).
_XYZ_FROM_RGB = (
    (0.412453, 0.357580, 0.180423),
    (0.212671, 0.715160, 0.072169),
    (0.019334, 0.119193, 0.950227),
)
# D65 reference white for the 2 degree observer.
_WHITE_D65 = (0.95047, 1.0, 1.08883)

_EPSILON = (6.0 / 29.0) ** 3  # 0.008856: where Lab's cube root meets its linear segment
_KAPPA_SLOPE = 1.0 / (3.0 * (6.0 / 29.0) ** 2)  # 7.787


def _matrix(rows, like: torch.Tensor) -> torch.Tensor:
    return torch.tensor(rows, dtype=like.dtype, device=like.device)


def _check_image(x: torch.Tensor, name: str) -> None:
    if x.dim() < 3 or x.shape[-3] != 3:
        raise ValueError(f"{name} must be shaped (3, H, W) or (B, 3, H, W), got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating point tensor, got {x.dtype}")


def srgb_to_linear(c: torch.Tensor) -> torch.Tensor:
    """Undo the sRGB transfer curve (values in [0, 1])."""
    # pow on the clamped copy keeps the gradient finite in the linear segment.
    curve = ((c.clamp(min=0.04045) + 0.055) / 1.055) ** 2.4
    return torch.where(c > 0.04045, curve, c / 12.92)


def linear_to_srgb(c: torch.Tensor) -> torch.Tensor:
    """Apply the sRGB transfer curve."""
    curve = 1.055 * c.clamp(min=0.0031308) ** (1.0 / 2.4) - 0.055
    return torch.where(c > 0.0031308, curve, c * 12.92)


def rgb_to_xyz(rgb: torch.Tensor) -> torch.Tensor:
    """sRGB in [0, 1] -> CIE XYZ, channels at dim -3."""
    lin = srgb_to_linear(rgb)
    return torch.einsum("ij,...jhw->...ihw", _matrix(_XYZ_FROM_RGB, rgb), lin)


def xyz_to_rgb(xyz: torch.Tensor) -> torch.Tensor:
    """CIE XYZ -> sRGB (unclipped), channels at dim -3."""
    rgb_from_xyz = torch.linalg.inv(_matrix(_XYZ_FROM_RGB, xyz).double()).to(xyz.dtype)
    return linear_to_srgb(torch.einsum("ij,...jhw->...ihw", rgb_from_xyz, xyz))


def _lab_f(t: torch.Tensor) -> torch.Tensor:
    cube_root = t.clamp(min=_EPSILON) ** (1.0 / 3.0)
    return torch.where(t > _EPSILON, cube_root, _KAPPA_SLOPE * t + 4.0 / 29.0)


def _lab_f_inv(f: torch.Tensor) -> torch.Tensor:
    delta = 6.0 / 29.0
    return torch.where(f > delta, f.clamp(min=delta) ** 3, (f - 4.0 / 29.0) / _KAPPA_SLOPE)


def rgb_to_lab(rgb: torch.Tensor) -> torch.Tensor:
    """sRGB in [0, 1] shaped (..., 3, H, W) -> Lab (L in [0, 100], a and b roughly in [-128, 127])."""
    _check_image(rgb, "rgb")
    xyz = rgb_to_xyz(rgb)
    white = _matrix(_WHITE_D65, xyz).view(3, 1, 1)
    fx, fy, fz = _lab_f(xyz / white).unbind(-3)
    lab = (116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz))
    return torch.stack(lab, dim=-3)


def lab_to_rgb(lab: torch.Tensor, clip: bool = True) -> torch.Tensor:
    """Lab shaped (..., 3, H, W) -> sRGB; out-of-gamut colors are clipped to [0, 1] unless `clip=False`."""
    _check_image(lab, "lab")
    L, a, b = lab.unbind(-3)
    fy = (L + 16.0) / 116.0
    f = torch.stack((fy + a / 500.0, fy, fy - b / 200.0), dim=-3)
    white = _matrix(_WHITE_D65, lab).view(3, 1, 1)
    rgb = xyz_to_rgb(_lab_f_inv(f) * white)
    return rgb.clamp(0.0, 1.0) if clip else rgb


def rgb_to_lab_colors(rgb: torch.Tensor) -> torch.Tensor:
    """Colors shaped (..., 3) in sRGB [0, 1] -> Lab (..., 3); for palettes rather than images."""
    return rgb_to_lab(rgb.unsqueeze(-1).unsqueeze(-1)).squeeze(-1).squeeze(-1)


def lab_to_rgb_colors(lab: torch.Tensor, clip: bool = True) -> torch.Tensor:
    """Colors shaped (..., 3) in Lab -> sRGB (..., 3)."""
    return lab_to_rgb(lab.unsqueeze(-1).unsqueeze(-1), clip=clip).squeeze(-1).squeeze(-1)


def rgb_to_gray(rgb: torch.Tensor) -> torch.Tensor:
    """The lightness of an sRGB image as a gray sRGB image (a = b = 0), shaped like the input."""
    lab = rgb_to_lab(rgb)
    gray_lab = torch.cat((lab[..., :1, :, :], torch.zeros_like(lab[..., 1:, :, :])), dim=-3)
    return lab_to_rgb(gray_lab)
