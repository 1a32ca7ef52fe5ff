"""CIEDE2000 color difference (Sharma, Wu & Dalal 2005), vectorized over any batch shape."""

from __future__ import annotations

import math

import torch

_POW25_7 = 25.0**7


def _hue_degrees(b: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """atan2 in degrees mapped to [0, 360); by the paper's convention h = 0 when a = b = 0."""
    h = torch.rad2deg(torch.atan2(b, a))
    return torch.where(h < 0, h + 360.0, h)


def ciede2000(lab1: torch.Tensor, lab2: torch.Tensor) -> torch.Tensor:
    """CIEDE2000 between Lab triples shaped (..., 3); the shapes broadcast; returns (...).

    kL = kC = kH = 1. Follows the implementation notes of Sharma et al. (2005), including their
    rules for the mean hue and the hue difference when a chroma is zero.
    """
    if lab1.shape[-1] != 3 or lab2.shape[-1] != 3:
        raise ValueError(f"Lab triples must end in 3, got {tuple(lab1.shape)} and {tuple(lab2.shape)}")
    L1, a1, b1 = lab1.unbind(-1)
    L2, a2, b2 = lab2.unbind(-1)

    # Step 1: a' scaled by G, chroma C' and hue h'.
    c_mean = 0.5 * (torch.hypot(a1, b1) + torch.hypot(a2, b2))
    c_mean7 = c_mean**7
    g = 0.5 * (1.0 - torch.sqrt(c_mean7 / (c_mean7 + _POW25_7)))
    a1p, a2p = (1.0 + g) * a1, (1.0 + g) * a2
    c1p, c2p = torch.hypot(a1p, b1), torch.hypot(a2p, b2)
    h1p, h2p = _hue_degrees(b1, a1p), _hue_degrees(b2, a2p)

    # Step 2: differences; the hue difference takes the short way round and is 0 for a neutral color.
    dL = L2 - L1
    dC = c2p - c1p
    chroma_product = c1p * c2p
    neutral = chroma_product == 0
    dh = h2p - h1p
    dh = torch.where(dh > 180.0, dh - 360.0, torch.where(dh < -180.0, dh + 360.0, dh))
    dh = torch.where(neutral, torch.zeros_like(dh), dh)
    dH = 2.0 * torch.sqrt(chroma_product) * torch.sin(torch.deg2rad(dh) / 2.0)

    # Step 3: weighting functions around the mean lightness, chroma and hue.
    L_mean = 0.5 * (L1 + L2)
    cp_mean = 0.5 * (c1p + c2p)
    h_sum = h1p + h2p
    far_apart = (h1p - h2p).abs() > 180.0
    h_mean = torch.where(far_apart, torch.where(h_sum < 360.0, h_sum + 360.0, h_sum - 360.0), h_sum) / 2.0
    h_mean = torch.where(neutral, h_sum, h_mean)

    t = (
        1.0
        - 0.17 * torch.cos(torch.deg2rad(h_mean - 30.0))
        + 0.24 * torch.cos(torch.deg2rad(2.0 * h_mean))
        + 0.32 * torch.cos(torch.deg2rad(3.0 * h_mean + 6.0))
        - 0.20 * torch.cos(torch.deg2rad(4.0 * h_mean - 63.0))
    )
    d_theta = 30.0 * torch.exp(-(((h_mean - 275.0) / 25.0) ** 2))
    cp_mean7 = cp_mean**7
    r_c = 2.0 * torch.sqrt(cp_mean7 / (cp_mean7 + _POW25_7))
    L_off2 = (L_mean - 50.0) ** 2
    s_l = 1.0 + 0.015 * L_off2 / torch.sqrt(20.0 + L_off2)
    s_c = 1.0 + 0.045 * cp_mean
    s_h = 1.0 + 0.015 * cp_mean * t
    r_t = -torch.sin(math.pi / 90.0 * d_theta) * r_c

    term_l, term_c, term_h = dL / s_l, dC / s_c, dH / s_h
    # clamp: rounding can push the sum a hair below 0 for identical colors.
    return torch.sqrt((term_l**2 + term_c**2 + term_h**2 + r_t * term_c * term_h).clamp(min=0.0))
