"""CIEDE2000 color difference (Sharma, Wu & Dalal 2005), vectorized over any batch shape."""

from __future__ import annotations

import math

import torch

_POW25_7 = 25.0**7
_TWO_PI = 2.0 * math.pi
# Elements per chunk: small enough that the ~60 temporaries of one chunk stay in the CPU cache,
# which makes large calls (palette distances over many candidates) several times faster.
_CHUNK = 1 << 15


def ciede2000(lab1: torch.Tensor, lab2: torch.Tensor) -> torch.Tensor:
    """CIEDE2000 between Lab triples shaped (..., 3); the shapes broadcast; returns (...).

    kL = kC = kH = 1. Follows the implementation notes of Sharma et al. (2005), including their
    rules for the mean hue and the hue difference when a chroma is zero.
    """
    if lab1.shape[-1] != 3 or lab2.shape[-1] != 3:
        raise ValueError(f"Lab triples must end in 3, got {tuple(lab1.shape)} and {tuple(lab2.shape)}")
    lab1, lab2 = torch.broadcast_tensors(lab1, lab2)
    shape = lab1.shape[:-1]
    flat1, flat2 = lab1.reshape(-1, 3), lab2.reshape(-1, 3)
    if flat1.shape[0] <= _CHUNK or torch.is_grad_enabled() and (lab1.requires_grad or lab2.requires_grad):
        return _ciede2000_flat(flat1, flat2).reshape(shape)
    out = torch.empty(flat1.shape[0], dtype=lab1.dtype, device=lab1.device)
    for start in range(0, flat1.shape[0], _CHUNK):
        stop = start + _CHUNK
        out[start:stop] = _ciede2000_flat(flat1[start:stop], flat2[start:stop])
    return out.reshape(shape)


def _hue(b: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """atan2 in radians mapped to [0, 2 pi); by the paper's convention h = 0 when a = b = 0."""
    h = torch.atan2(b, a)
    return torch.where(h < 0, h + _TWO_PI, h)


def _ciede2000_flat(lab1: torch.Tensor, lab2: torch.Tensor) -> torch.Tensor:
    """CIEDE2000 on (N, 3) pairs, angles in radians throughout."""
    L1, a1, b1 = lab1.unbind(-1)
    L2, a2, b2 = lab2.unbind(-1)

    # Step 1: a' scaled by G, chroma C' and hue h'.
    c_mean7 = (0.5 * (torch.hypot(a1, b1) + torch.hypot(a2, b2))) ** 7
    g1 = 1.5 - 0.5 * torch.sqrt(c_mean7 / (c_mean7 + _POW25_7))  # 1 + G
    a1p, a2p = g1 * a1, g1 * a2
    c1p, c2p = torch.hypot(a1p, b1), torch.hypot(a2p, b2)
    h1p, h2p = _hue(b1, a1p), _hue(b2, a2p)

    # Step 2: differences; the hue difference takes the short way round.
    chroma_product = c1p * c2p
    neutral = chroma_product == 0
    dh = h2p - h1p
    dh = torch.where(dh > math.pi, dh - _TWO_PI, torch.where(dh < -math.pi, dh + _TWO_PI, dh))
    dH = 2.0 * torch.sqrt(chroma_product) * torch.sin(0.5 * dh)  # 0 for a neutral color, as Sharma et al.

    # Step 3: weighting functions around the mean lightness, chroma and hue.
    h_sum = h1p + h2p
    far_apart = (h1p - h2p).abs() > math.pi
    wrapped = torch.where(h_sum < _TWO_PI, h_sum + _TWO_PI, h_sum - _TWO_PI)
    h_mean = torch.where(neutral, h_sum, 0.5 * torch.where(far_apart, wrapped, h_sum))

    t = (
        1.0
        - 0.17 * torch.cos(h_mean - math.radians(30.0))
        + 0.24 * torch.cos(2.0 * h_mean)
        + 0.32 * torch.cos(3.0 * h_mean + math.radians(6.0))
        - 0.20 * torch.cos(4.0 * h_mean - math.radians(63.0))
    )
    d_theta = math.radians(30.0) * torch.exp(-(((h_mean - math.radians(275.0)) / math.radians(25.0)) ** 2))
    cp_mean = 0.5 * (c1p + c2p)
    cp_mean7 = cp_mean**7
    r_c = 2.0 * torch.sqrt(cp_mean7 / (cp_mean7 + _POW25_7))
    L_off2 = (0.5 * (L1 + L2) - 50.0) ** 2
    s_l = 1.0 + 0.015 * L_off2 / torch.sqrt(20.0 + L_off2)
    s_c = 1.0 + 0.045 * cp_mean
    s_h = 1.0 + 0.015 * cp_mean * t
    r_t = -torch.sin(2.0 * d_theta) * r_c

    term_l, term_c, term_h = (L2 - L1) / s_l, (c2p - c1p) / s_c, dH / s_h
    # clamp: rounding can push the sum a hair below 0 for identical colors.
    return torch.sqrt((term_l**2 + term_c**2 + term_h**2 + r_t * term_c * term_h).clamp(min=0.0))
