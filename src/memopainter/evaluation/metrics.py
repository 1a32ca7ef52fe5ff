"""Full-resolution image metrics against ground truth, over opaque pixels only.

Images are sRGB tensors shaped (3, H, W) with values in [0, 1]. `mask` selects the pixels that count: a bool
(H, W) tensor, or a float alpha (H, W) in [0, 1] read as opaque where alpha >= 0.5; None counts every pixel.
Pixels outside the mask may hold anything (sprites often keep garbage under alpha 0): no metric reads them.
All arithmetic is in float64, whatever the input dtype.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from memopainter.color import ciede2000, rgb_to_lab

# SSIM as Wang et al. (2004) and scikit-image's gaussian_weights=True: sigma 1.5 truncated at 3.5 sigma,
# which is an 11-tap window (radius int(3.5 * 1.5 + 0.5) = 5).
_SSIM_SIGMA = 1.5
_SSIM_RADIUS = 5
_SSIM_C1 = 0.01**2  # (K1 * data_range)^2, data range 1
_SSIM_C2 = 0.03**2  # (K2 * data_range)^2


def _check_rgb(x: torch.Tensor, name: str) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 3 or x.shape[0] != 3:
        raise ValueError(f"{name} must be shaped (3, H, W), got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating point tensor in [0, 1], got {x.dtype}")
    if x.numel() == 0:
        raise ValueError(f"{name} is empty: {tuple(x.shape)}")
    low, high = float(x.min()), float(x.max())
    if not (0.0 <= low and high <= 1.0):  # also catches NaN
        raise ValueError(f"{name} must hold values in [0, 1], got [{low:g}, {high:g}]")


def check_rgb_pair(pred_rgb: torch.Tensor, true_rgb: torch.Tensor) -> None:
    """Raise unless both are float (3, H, W) tensors of one shape with values in [0, 1]."""
    _check_rgb(pred_rgb, "pred_rgb")
    _check_rgb(true_rgb, "true_rgb")
    if pred_rgb.shape != true_rgb.shape:
        raise ValueError(
            f"pred_rgb and true_rgb differ in shape: {tuple(pred_rgb.shape)} vs {tuple(true_rgb.shape)}"
        )


def opaque_mask(mask: torch.Tensor | None, height: int, width: int) -> torch.Tensor:
    """The (H, W) bool mask of counted pixels: `mask` itself, alpha >= 0.5, or all True for None."""
    if mask is None:
        return torch.ones(height, width, dtype=torch.bool)
    if not isinstance(mask, torch.Tensor):
        raise TypeError(f"mask must be a torch.Tensor or None, got {type(mask).__name__}")
    if tuple(mask.shape) != (height, width):
        raise ValueError(f"mask must be shaped (H, W) = ({height}, {width}), got {tuple(mask.shape)}")
    if mask.dtype == torch.bool:
        keep = mask
    elif mask.is_floating_point():
        low, high = float(mask.min()), float(mask.max())
        if not (0.0 <= low and high <= 1.0):
            raise ValueError(f"mask as alpha must hold values in [0, 1], got [{low:g}, {high:g}]")
        keep = mask >= 0.5
    else:
        # An integer alpha (0..255) thresholded at 0.5 would count nearly every pixel: refuse it.
        raise TypeError(f"mask must be bool or float alpha in [0, 1], got {mask.dtype}")
    if not bool(keep.any()):
        raise ValueError("mask selects no pixels: nothing to evaluate")
    return keep.cpu()


def delta_e2000(pred_rgb: torch.Tensor, true_rgb: torch.Tensor, mask: torch.Tensor | None = None) -> float:
    """Mean CIEDE2000 colour difference over the masked pixels; 0 for identical images, lower is better."""
    check_rgb_pair(pred_rgb, true_rgb)
    keep = opaque_mask(mask, *true_rgb.shape[1:])
    lab_pred = rgb_to_lab(pred_rgb.detach().cpu().double()).permute(1, 2, 0)[keep]  # (N, 3)
    lab_true = rgb_to_lab(true_rgb.detach().cpu().double()).permute(1, 2, 0)[keep]  # (N, 3)
    return float(ciede2000(lab_pred, lab_true).mean())


def psnr(pred_rgb: torch.Tensor, true_rgb: torch.Tensor, mask: torch.Tensor | None = None) -> float:
    """Peak signal-to-noise ratio in dB of sRGB in [0, 1], the MSE taken over the 3 channels of masked pixels.

    Identical images give math.inf. JSON has no infinity (Python's `Infinity` token is not JSON), so a
    writer should store it as null, or as a cap it states, never as inf itself.
    """
    check_rgb_pair(pred_rgb, true_rgb)
    keep = opaque_mask(mask, *true_rgb.shape[1:])
    diff = pred_rgb.detach().cpu().double() - true_rgb.detach().cpu().double()  # (3, H, W)
    mse = float((diff[:, keep] ** 2).mean())
    if mse == 0.0:
        return math.inf
    return 10.0 * math.log10(1.0 / mse)


def _gaussian_taps(dtype: torch.dtype) -> torch.Tensor:
    """The normalised 1-D Gaussian of SSIM's window, shaped (11,)."""
    offsets = torch.arange(-_SSIM_RADIUS, _SSIM_RADIUS + 1, dtype=dtype)
    taps = torch.exp(-0.5 * (offsets / _SSIM_SIGMA) ** 2)
    return taps / taps.sum()


def _blur_valid(x: torch.Tensor) -> torch.Tensor:
    """Separable Gaussian filter of (N, H, W) maps, kept only where the window fits: (N, H - 10, W - 10)."""
    taps = _gaussian_taps(x.dtype)
    x = F.conv2d(x.unsqueeze(1), taps.view(1, 1, -1, 1))
    return F.conv2d(x, taps.view(1, 1, 1, -1)).squeeze(1)


def ssim(pred_rgb: torch.Tensor, true_rgb: torch.Tensor, mask: torch.Tensor | None = None) -> float:
    """Mean SSIM (Wang et al. 2004) per channel, averaged over channels; 1 for identical images.

    Gaussian window 11 (sigma 1.5), K1 0.01, K2 0.03, data range 1, population statistics: without a mask
    this equals scikit-image's structural_similarity(gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False, data_range=1, channel_axis=0). As there (and in Wang's reference code),
    only window centres at least 5 px from the border are scored, so images need at least 11 x 11 pixels.
    With a mask, the SSIM map is averaged over the opaque centres, and each window's means, variances and
    covariance are weighted over its opaque pixels only, so transparent pixels never affect the score.
    """
    check_rgb_pair(pred_rgb, true_rgb)
    height, width = true_rgb.shape[1:]
    if min(height, width) < 2 * _SSIM_RADIUS + 1:
        side = 2 * _SSIM_RADIUS + 1
        raise ValueError(f"ssim needs images of at least {side} x {side} pixels, got {height} x {width}")
    keep = opaque_mask(mask, height, width)
    centres = keep[_SSIM_RADIUS:-_SSIM_RADIUS, _SSIM_RADIUS:-_SSIM_RADIUS]  # (H - 10, W - 10)
    if not bool(centres.any()):
        raise ValueError(f"mask selects no pixel at least {_SSIM_RADIUS} px from the border: no SSIM window")

    x = pred_rgb.detach().cpu().double()  # (3, H, W)
    y = true_rgb.detach().cpu().double()
    m = keep.double().expand_as(x)  # (3, H, W)
    stats = _blur_valid(torch.cat((m, m * x, m * y, m * x * x, m * y * y, m * x * y)))  # (18, h, w)
    weight, sx, sy, sxx, syy, sxy = stats.split(3)  # each (3, h, w)
    # An opaque centre weighs at least the window's centre tap, so the clamp only guards unused entries.
    weight = weight.clamp(min=1e-12)
    ux, uy = sx / weight, sy / weight
    vx = sxx / weight - ux * ux
    vy = syy / weight - uy * uy
    vxy = sxy / weight - ux * uy
    ssim_map = ((2 * ux * uy + _SSIM_C1) * (2 * vxy + _SSIM_C2)) / (
        (ux * ux + uy * uy + _SSIM_C1) * (vx + vy + _SSIM_C2)
    )  # (3, h, w)
    return float(ssim_map[:, centres].mean())


def colorfulness(rgb: torch.Tensor, mask: torch.Tensor | None = None) -> float:
    """Hasler & Suesstrunk (2003) colourfulness on the 0..255 scale over the masked pixels; 0 for gray.

    rg = R - G, yb = (R + G) / 2 - B, M = sqrt(std_rg^2 + std_yb^2) + 0.3 sqrt(mean_rg^2 + mean_yb^2),
    with population standard deviations.
    """
    _check_rgb(rgb, "rgb")
    keep = opaque_mask(mask, *rgb.shape[1:])
    r, g, b = (rgb.detach().cpu().double() * 255.0)[:, keep]  # each (N,)
    rg = r - g
    yb = 0.5 * (r + g) - b
    spread = torch.sqrt(rg.var(correction=0) + yb.var(correction=0))
    offset = torch.sqrt(rg.mean() ** 2 + yb.mean() ** 2)
    return float(spread + 0.3 * offset)
