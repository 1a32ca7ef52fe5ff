"""Region mode for flat-colored art: every region of one lightness takes one color.

Comic panels, sprites and emoji are drawn in flat fills bounded by line art or by a step in lightness. The
network's ab, even upsampled under guidance, varies inside a fill (blotches, a fringe near the lines); here
each connected region of equal quantised lightness gets the mean of its pixels' ab. Shaded art and photos
have few pixels per lightness level in one place, so their regions stay small and their colors nearly as
they were.
"""

from __future__ import annotations

import torch

# Hard-coded, not an option: 2 L units merges the 8-bit rounding noise of a flat fill and keeps apart fills
# whose lightness differs visibly.
LEVEL_STEP = 2.0


def region_labels(levels: torch.Tensor) -> torch.Tensor:
    """Connected regions (4-neighbour) of equal value in an integer map (H, W) -> a label per pixel (H, W),
    the smallest flat index in its region; pixels of level -1 are left alone (label = own index).

    Hooking and pointer jumping (Shiloach-Vishkin): each round links every edge between two equal pixels to
    the smaller of their roots, then flattens every chain, so rounds grow with the log of a region's size.
    """
    h, w = levels.shape
    index = torch.arange(h * w).view(h, w)
    flat = levels.reshape(-1)
    edges = [
        (index[:, :-1].reshape(-1), index[:, 1:].reshape(-1)),  # left-right pairs
        (index[:-1, :].reshape(-1), index[1:, :].reshape(-1)),  # top-bottom pairs
    ]
    pairs = [
        (a[(flat[a] == flat[b]) & (flat[a] >= 0)], b[(flat[a] == flat[b]) & (flat[a] >= 0)]) for a, b in edges
    ]
    u = torch.cat([a for a, _ in pairs])
    v = torch.cat([b for _, b in pairs])
    parent = torch.arange(h * w)
    while True:
        pu, pv = parent[u], parent[v]
        low, high = torch.minimum(pu, pv), torch.maximum(pu, pv)
        before = parent.clone()
        parent.scatter_reduce_(0, high, low, reduce="amin")
        while not torch.equal(parent[parent], parent):
            parent = parent[parent]
        if torch.equal(parent, before):
            return parent.view(h, w)


def region_mean_ab(ab: torch.Tensor, lightness: torch.Tensor, alpha: torch.Tensor | None) -> torch.Tensor:
    """ab (2, H, W) -> the same with every region of equal quantised lightness (H, W) set to its mean ab.

    Transparent pixels (alpha < 128 of 255) join no region and keep their ab.
    """
    levels = torch.round(lightness / LEVEL_STEP).to(torch.int64)  # (H, W)
    if alpha is not None:
        levels = torch.where(alpha < 128, -1, levels)
    labels = region_labels(levels).reshape(-1)  # (H*W,)
    count = torch.zeros(labels.numel()).index_add_(0, labels, torch.ones(labels.numel()))
    flat = ab.reshape(2, -1)
    sums = torch.zeros_like(flat).index_add_(1, labels, flat)  # (2, H*W), filled at each region's label
    return (sums[:, labels] / count[labels]).view_as(ab)
