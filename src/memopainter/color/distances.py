"""Distances between color features, batched: one call compares B queries with B x k candidates.

Shapes broadcast, so `symmetric_kl(v[:, None], values[idx])` with v (B, 313) and values[idx] (B, k, 313)
returns (B, k).
"""

from __future__ import annotations

import torch

from memopainter.color.ciede2000 import ciede2000
from memopainter.color.lab import rgb_to_lab_colors

KL_EPSILON = 1e-6
# Broadcast elements per block: a few temporaries of this size stay in the CPU cache, which makes a call
# over many candidates several times faster than one pass over a large (B, k, D) tensor per operation.
_BLOCK_ELEMENTS = 1 << 17


def _smooth(p: torch.Tensor, eps: float) -> torch.Tensor:
    """Mix in eps of the uniform mass so no bin is zero; still a distribution."""
    if bool((p < 0).any()):
        p = p.clamp(min=0.0)
    return torch.add(p, eps).div_(p.sum(-1, keepdim=True) + eps * p.shape[-1])


def _blockwise(fn, a: torch.Tensor, b: torch.Tensor, item_dims: int) -> torch.Tensor:
    """fn(a, b) over the broadcast of a and b, in blocks along the first batch dim (same result, faster)."""
    shape = torch.broadcast_shapes(a.shape[:-item_dims], b.shape[:-item_dims])  # batch dims only
    if not shape or torch.is_grad_enabled() and (a.requires_grad or b.requires_grad):
        return fn(a, b)
    # Elements of one pair of items, roughly: D for distributions, about 3 n1 n2 for palettes.
    per_item = a.shape[-item_dims:].numel() * b.shape[-item_dims:].numel() // a.shape[-1]
    rows = max(1, _BLOCK_ELEMENTS // max(1, shape[1:].numel() * per_item))
    if rows >= shape[0]:
        return fn(a, b)
    a = a.reshape((1,) * (len(shape) + item_dims - a.dim()) + tuple(a.shape))
    b = b.reshape((1,) * (len(shape) + item_dims - b.dim()) + tuple(b.shape))
    blocks = []
    for start in range(0, shape[0], rows):
        stop = start + rows
        blocks.append(fn(a[start:stop] if a.shape[0] > 1 else a, b[start:stop] if b.shape[0] > 1 else b))
    return torch.cat(blocks)


def symmetric_kl(p: torch.Tensor, q: torch.Tensor, eps: float = KL_EPSILON) -> torch.Tensor:
    """KL(p||q) + KL(q||p) in nats over the last dim; finite and >= 0, empty bins included.

    Both sides are smoothed with `eps` before the logs (the public reimplementation's one-sided
    epsilon gives NaN for an empty bin and so never matches anything). The sum is computed as
    sum((p - q) * (log p - log q)), whose every term is >= 0, so the result cannot go negative.
    """
    return _blockwise(lambda a, b: _symmetric_kl(a, b, eps), p, q, item_dims=1)


def _symmetric_kl(p: torch.Tensor, q: torch.Tensor, eps: float) -> torch.Tensor:
    ps, qs = _smooth(p, eps), _smooth(q, eps)
    return ((ps - qs) * (ps.log() - qs.log())).sum(-1)


def palette_distance(p1: torch.Tensor, p2: torch.Tensor) -> torch.Tensor:
    """Order-invariant distance between palettes of sRGB colors in [0, 1] shaped (..., n, 3) or (..., 3n).

    Mean CIEDE2000 from each color to its nearest color in the other palette, averaged over both
    directions (a symmetric Chamfer distance). Two palettes holding the same colors in any order are
    at distance 0, which pairing colors by index would not give.
    """
    lab1, lab2 = rgb_to_lab_colors(_as_colors(p1)), rgb_to_lab_colors(_as_colors(p2))
    return _blockwise(_chamfer_ciede2000, lab1, lab2, item_dims=2)


def _chamfer_ciede2000(lab1: torch.Tensor, lab2: torch.Tensor) -> torch.Tensor:
    d = ciede2000(lab1.unsqueeze(-2), lab2.unsqueeze(-3))  # (..., n1, n2)
    return 0.5 * (d.amin(-1).mean(-1) + d.amin(-2).mean(-1))


def _as_colors(palette: torch.Tensor) -> torch.Tensor:
    """Accept flattened palettes (..., 3n) as stored in memory values, or (..., n, 3)."""
    if palette.dim() >= 2 and palette.shape[-1] == 3:
        return palette
    if palette.shape[-1] % 3 != 0:
        raise ValueError(f"a palette must be shaped (..., n, 3) or (..., 3n), got {tuple(palette.shape)}")
    return palette.reshape(*palette.shape[:-1], -1, 3)
