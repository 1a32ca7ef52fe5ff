"""Distances between color features, batched: one call compares B queries with B x k candidates.

Shapes broadcast, so `symmetric_kl(v[:, None], values[idx])` with v (B, 313) and values[idx] (B, k, 313)
returns (B, k).
"""

from __future__ import annotations

import torch

from memopainter.color.ciede2000 import ciede2000
from memopainter.color.lab import rgb_to_lab_colors

KL_EPSILON = 1e-6


def _smooth(p: torch.Tensor, eps: float) -> torch.Tensor:
    """Mix in eps of the uniform mass so no bin is zero; still a distribution."""
    return (p.clamp(min=0.0) + eps) / (p.clamp(min=0.0).sum(-1, keepdim=True) + eps * p.shape[-1])


def symmetric_kl(p: torch.Tensor, q: torch.Tensor, eps: float = KL_EPSILON) -> torch.Tensor:
    """KL(p||q) + KL(q||p) in nats over the last dim; finite and >= 0, empty bins included.

    Both sides are smoothed with `eps` before the logs (the public reimplementation's one-sided
    epsilon gives NaN for an empty bin and so never matches anything). The sum is computed as
    sum((p - q) * (log p - log q)), whose every term is >= 0, so the result cannot go negative.
    """
    ps, qs = _smooth(p, eps), _smooth(q, eps)
    return ((ps - qs) * (ps.log() - qs.log())).sum(-1)


def palette_distance(p1: torch.Tensor, p2: torch.Tensor) -> torch.Tensor:
    """Order-invariant distance between palettes of sRGB colors in [0, 1] shaped (..., n, 3) or (..., 3n).

    Mean CIEDE2000 from each color to its nearest color in the other palette, averaged over both
    directions (a symmetric Chamfer distance). Two palettes holding the same colors in any order are
    at distance 0, which pairing colors by index would not give.
    """
    lab1, lab2 = rgb_to_lab_colors(_as_colors(p1)), rgb_to_lab_colors(_as_colors(p2))
    d = ciede2000(lab1.unsqueeze(-2), lab2.unsqueeze(-3))  # (..., n1, n2)
    return 0.5 * (d.amin(-1).mean(-1) + d.amin(-2).mean(-1))


def _as_colors(palette: torch.Tensor) -> torch.Tensor:
    """Accept flattened palettes (..., 3n) as stored in memory values, or (..., n, 3)."""
    if palette.dim() >= 2 and palette.shape[-1] == 3:
        return palette
    if palette.shape[-1] % 3 != 0:
        raise ValueError(f"a palette must be shaped (..., n, 3) or (..., 3n), got {tuple(palette.shape)}")
    return palette.reshape(*palette.shape[:-1], -1, 3)
