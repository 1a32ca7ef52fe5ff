"""The 313 quantized ab bins of Zhang et al. (2016), soft encoding, and per-image ab distributions."""

from __future__ import annotations

import functools
from importlib import resources

import torch

from memopainter.color.lab import rgb_to_lab

NUM_BINS = 313
SOFT_NEIGHBOURS = 10  # Zhang et al.: each pixel spreads over its 10 nearest bins
SOFT_SIGMA = 5.0  # ... with a Gaussian of sigma 5 (ab units)


@functools.lru_cache(maxsize=1)
def _bins_float64() -> torch.Tensor:
    text = resources.files("memopainter.color").joinpath("data/ab_bins_313.txt").read_text()
    rows = [line.split() for line in text.splitlines() if line.strip() and not line.startswith("#")]
    bins = torch.tensor([[float(a), float(b)] for a, b in rows], dtype=torch.float64)
    if bins.shape != (NUM_BINS, 2):
        raise RuntimeError(f"ab_bins_313.txt holds {tuple(bins.shape)} values, expected (313, 2)")
    return bins


def ab_bins(dtype: torch.dtype = torch.float32, device: torch.device | str | None = None) -> torch.Tensor:
    """The (313, 2) bin centres in ab units, in the order of Zhang et al.'s `pts_in_hull.npy`."""
    return _bins_float64().to(dtype=dtype, device=device)


def _squared_distances(ab: torch.Tensor) -> torch.Tensor:
    """(..., 2) ab values -> (..., 313) squared distances to every bin centre."""
    bins = ab_bins(ab.dtype, ab.device)
    flat = ab.reshape(-1, 2)
    # |x|^2 - 2 x.c + |c|^2 as one matmul: much faster than cdist's pairwise loop on CPU.
    d2 = (flat * flat).sum(-1, keepdim=True) - 2.0 * flat @ bins.T + (bins * bins).sum(-1)
    return d2.clamp(min=0.0).reshape(*ab.shape[:-1], NUM_BINS)


def nearest_bin(ab: torch.Tensor) -> torch.Tensor:
    """Index (int64) of the nearest bin centre for ab values shaped (..., 2)."""
    return _squared_distances(ab).argmin(-1)


def soft_encode_sparse(
    ab: torch.Tensor, neighbours: int = SOFT_NEIGHBOURS, sigma: float = SOFT_SIGMA
) -> tuple[torch.Tensor, torch.Tensor]:
    """Soft encoding as (weights, indices), each (..., neighbours); weights sum to 1 per pixel."""
    d2 = _squared_distances(ab)
    neg_d2, idx = torch.topk(-d2, neighbours, dim=-1)
    weights = torch.softmax(neg_d2 / (2.0 * sigma**2), dim=-1)  # Gaussian kernel, normalised
    return weights, idx


def soft_encode(ab: torch.Tensor, neighbours: int = SOFT_NEIGHBOURS, sigma: float = SOFT_SIGMA) -> torch.Tensor:
    """Dense soft encoding: ab values (..., 2) -> (..., 313) distributions over the bins."""
    weights, idx = soft_encode_sparse(ab, neighbours, sigma)
    out = torch.zeros(*ab.shape[:-1], NUM_BINS, dtype=ab.dtype, device=ab.device)
    return out.scatter(-1, idx, weights)


def ab_distribution(rgb: torch.Tensor, alpha: torch.Tensor | None = None) -> torch.Tensor:
    """Soft-encoded ab histogram of an image: (3, H, W) -> (313,), (B, 3, H, W) -> (B, 313); sums to 1.

    With `alpha` ((H, W), (B, H, W) or with a channel dim of 1, values in [0, 1]) only opaque pixels
    (alpha >= 0.5) count. An image with no opaque pixel carries no color information and gets the
    uniform distribution.
    """
    single = rgb.dim() == 3
    batch = rgb.unsqueeze(0) if single else rgb
    if batch.dim() != 4 or batch.shape[1] != 3:
        raise ValueError(f"rgb must be shaped (3, H, W) or (B, 3, H, W), got {tuple(rgb.shape)}")
    b, _, h, w = batch.shape
    ab = rgb_to_lab(batch)[:, 1:].permute(0, 2, 3, 1).reshape(b, h * w, 2)
    weights, idx = soft_encode_sparse(ab)  # (B, HW, 10) each
    if alpha is None:
        pixel_weight = torch.ones(b, h * w, dtype=batch.dtype, device=batch.device)
    else:
        mask = alpha.reshape(b, -1) if alpha.numel() == b * h * w else None
        if mask is None:
            raise ValueError(f"alpha of shape {tuple(alpha.shape)} does not match an image of {h}x{w}")
        pixel_weight = (mask >= 0.5).to(batch.dtype)
    hist = torch.zeros(b, NUM_BINS, dtype=batch.dtype, device=batch.device)
    hist = hist.scatter_add(1, idx.reshape(b, -1), (weights * pixel_weight.unsqueeze(-1)).reshape(b, -1))
    total = hist.sum(-1, keepdim=True)
    uniform = torch.full_like(hist, 1.0 / NUM_BINS)
    hist = torch.where(total > 0, hist / total.clamp(min=1e-12), uniform)
    return hist[0] if single else hist
