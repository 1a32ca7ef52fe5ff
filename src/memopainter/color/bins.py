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


_GRID_STEP = 10.0  # the bin centres lie on a 10-unit ab grid
_GRID_MIN = -150  # lookup table range in ab units: wider than any sRGB color's ab
_GRID_SIZE = 31  # -150 .. 150 in steps of 10
_WINDOW = 2  # candidates: the 5x5 grid points around the grid point nearest to a pixel
# A pixel lies within 5 units of its nearest grid point along each axis, so every bin outside its 5x5
# window is at least 25 units away: when the 10th nearest candidate is within 25 units, the window
# holds the exact 10 nearest bins. Otherwise (near the gamut border) we fall back to all 313 bins.
_WINDOW_RADIUS2 = 25.0**2


@functools.lru_cache(maxsize=1)
def _grid_lookup() -> torch.Tensor:
    """(31, 31) int64 table: bin index at each 10-unit ab grid point, -1 where there is no bin."""
    table = torch.full((_GRID_SIZE, _GRID_SIZE), -1, dtype=torch.int64)
    cells = ((_bins_float64() - _GRID_MIN) / _GRID_STEP).round().long()
    table[cells[:, 0], cells[:, 1]] = torch.arange(NUM_BINS)
    return table


def _window_candidates(ab: torch.Tensor) -> torch.Tensor:
    """(N, 2) ab -> (N, 25) indices of the bins in the 5x5 grid window around each pixel, -1 for none."""
    centre = ((ab.detach() - _GRID_MIN) / _GRID_STEP).round().long()  # (N, 2)
    offsets = torch.arange(-_WINDOW, _WINDOW + 1, device=ab.device)
    rows = (centre[:, :1] + offsets).clamp(0, _GRID_SIZE - 1)  # (N, 5)
    cols = (centre[:, 1:] + offsets).clamp(0, _GRID_SIZE - 1)  # (N, 5)
    table = _grid_lookup().to(ab.device)
    return table[rows.unsqueeze(-1), cols.unsqueeze(-2)].reshape(ab.shape[0], -1)


def _nearest_bins(ab: torch.Tensor, neighbours: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, 2) ab -> (negated squared distances, indices) of the `neighbours` nearest bins, each (N, n)."""
    bins = ab_bins(ab.dtype, ab.device)
    cand = _window_candidates(ab)  # (N, 25)
    d2 = ((ab.unsqueeze(1) - bins[cand.clamp(min=0)]) ** 2).sum(-1)
    d2 = d2.masked_fill(cand < 0, float("inf"))
    neg_d2, pos = torch.topk(-d2, neighbours, dim=-1)
    idx = cand.gather(1, pos)
    outside = ~(-neg_d2[:, -1] <= _WINDOW_RADIUS2)
    if outside.any():
        far_neg_d2, far_idx = torch.topk(-_squared_distances(ab[outside]), neighbours, dim=-1)
        neg_d2 = neg_d2.masked_scatter(outside.unsqueeze(1), far_neg_d2)
        idx = idx.masked_scatter(outside.unsqueeze(1), far_idx)
    return neg_d2, idx


def soft_encode_sparse(
    ab: torch.Tensor, neighbours: int = SOFT_NEIGHBOURS, sigma: float = SOFT_SIGMA
) -> tuple[torch.Tensor, torch.Tensor]:
    """Soft encoding as (weights, indices), each (..., neighbours); weights sum to 1 per pixel."""
    if ab.shape[-1] != 2:
        raise ValueError(f"ab values must be shaped (..., 2), got {tuple(ab.shape)}")
    if not 1 <= neighbours <= NUM_BINS:
        raise ValueError(f"neighbours must be in 1..{NUM_BINS}, got {neighbours}")
    flat = ab.reshape(-1, 2)
    if neighbours > 25:
        neg_d2, idx = torch.topk(-_squared_distances(flat), neighbours, dim=-1)
    else:
        neg_d2, idx = _nearest_bins(flat, neighbours)
    weights = torch.softmax(neg_d2 / (2.0 * sigma**2), dim=-1)  # Gaussian kernel, normalised
    shape = (*ab.shape[:-1], neighbours)
    return weights.reshape(shape), idx.reshape(shape)


def soft_encode(
    ab: torch.Tensor, neighbours: int = SOFT_NEIGHBOURS, sigma: float = SOFT_SIGMA
) -> torch.Tensor:
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
        _check_alpha(alpha, b, h, w)
        pixel_weight = (alpha.reshape(b, h * w) >= 0.5).to(batch.dtype)
    hist = torch.zeros(b, NUM_BINS, dtype=batch.dtype, device=batch.device)
    hist = hist.scatter_add(1, idx.reshape(b, -1), (weights * pixel_weight.unsqueeze(-1)).reshape(b, -1))
    total = hist.sum(-1, keepdim=True)
    uniform = torch.full_like(hist, 1.0 / NUM_BINS)
    hist = torch.where(total > 0, hist / total.clamp(min=1e-12), uniform)
    return hist[0] if single else hist


def _check_alpha(alpha: torch.Tensor, b: int, h: int, w: int) -> None:
    """Refuse masks that merely hold the right number of values (a transposed (W, H) mask, say)."""
    leading = tuple(alpha.shape[:-2])
    allowed = {(b,), (b, 1)} | ({(), (1, 1)} if b == 1 else set())
    if tuple(alpha.shape[-2:]) != (h, w) or leading not in allowed:
        raise ValueError(
            f"alpha must be shaped (H, W), (B, H, W) or (B, 1, H, W) for {b} image(s) of {h}x{w}, "
            f"got {tuple(alpha.shape)}"
        )
