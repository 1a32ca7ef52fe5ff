"""Region mode for flat-colored art: every region of one lightness takes one color.

Comic panels, sprites and emoji are drawn in flat fills bounded by line art or by a step in lightness. The
network's ab, even upsampled under guidance, varies inside a fill (blotches, a fringe near the lines); here
each connected region of equal quantised lightness gets the mean of its pixels' ab.

Regions are found on horizontal runs of one level, not on pixels: a flat drawing of 4096 x 4096 has some
ten thousand runs, so the work and memory grow with the drawing's runs. An image with more than MIN_RUNS runs
and more runs than MAX_RUN_SHARE of its pixels is not flat art (a large photo, shaded art): it keeps its
guided colors unchanged rather than cost seconds and gigabytes for regions of a pixel or two.
"""

from __future__ import annotations

import torch

# Hard-coded, not options: 2 L units merges the 8-bit rounding noise of a flat fill and keeps apart fills
# whose lightness differs visibly; flat art has runs many pixels long, photos of about one or two.
LEVEL_STEP = 2.0
MAX_RUN_SHARE = 0.25
MIN_RUNS = 1 << 16  # below this every image is cheap enough to label


def region_mean_ab(
    ab: torch.Tensor, lightness: torch.Tensor, alpha: torch.Tensor | None, keep_border: bool = False
) -> torch.Tensor:
    """ab (C, H, W), ab or ab and L -> the same with every connected region (4-neighbour) of equal
    quantised lightness (H, W) set to its mean. Transparent pixels (alpha < 128 of 255) join no region and
    keep their values; with `keep_border`, so do the regions that touch the image's border (the paper
    around a drawing, and whatever its open outlines let into it)."""
    h, w = lightness.shape
    levels = torch.round(lightness / LEVEL_STEP).to(torch.int16)  # (H, W), 0..50
    if alpha is not None:
        levels = torch.where(alpha < 128, -1, levels)
    starts = torch.ones(h, w, dtype=torch.bool)
    starts[:, 1:] = levels[:, 1:] != levels[:, :-1]  # a run of one level begins here
    if int(starts.sum()) > max(MAX_RUN_SHARE * h * w, MIN_RUNS):
        return ab
    run_of = starts.view(-1).cumsum(0, dtype=torch.int32).sub_(1).view(h, w)  # (H, W) run index per pixel
    run_level = levels.view(-1)[starts.view(-1)]  # (R,)
    root = _merge_runs(_touching_runs(levels, starts, run_of), run_level)  # (R,) region per run
    kept = run_level >= 0  # (R,) runs that take their region's mean
    if keep_border:
        border = torch.cat([run_of[0], run_of[-1], run_of[:, 0], run_of[:, -1]]).long()  # (2H + 2W,)
        open_region = torch.zeros(root.numel(), dtype=torch.bool)
        open_region[root[border]] = True
        kept &= ~open_region[root]
    return _region_means(ab, run_of.view(-1), root, kept)


def _touching_runs(levels: torch.Tensor, starts: torch.Tensor, run_of: torch.Tensor) -> torch.Tensor:
    """(2, E) pairs of runs in consecutive rows that share a level and a column.

    Two overlapping runs share the column where the later of them starts, so only columns where a run
    starts in either row are looked at: about two per run, not one per pixel.
    """
    same = (levels[:-1] == levels[1:]) & (levels[:-1] >= 0) & (starts[:-1] | starts[1:])  # (H-1, W)
    rows, cols = same.nonzero(as_tuple=True)
    return torch.stack([run_of[rows, cols], run_of[rows + 1, cols]]).long()


def _merge_runs(pairs: torch.Tensor, run_level: torch.Tensor) -> torch.Tensor:
    """Connected components of the run graph: each run's smallest run index in its region.

    Hooking and pointer jumping (Shiloach-Vishkin): each round links both ends of every pair to the smaller
    of their roots, then flattens every chain; the rounds grow with the log of a region's size.
    """
    parent = torch.arange(run_level.numel())
    u, v = pairs
    while True:
        before = parent.clone()
        pu, pv = parent[u], parent[v]
        parent.scatter_reduce_(0, torch.maximum(pu, pv), torch.minimum(pu, pv), reduce="amin")
        while not torch.equal(parent[parent], parent):
            parent = parent[parent]
        if torch.equal(parent, before):
            return parent


def _region_means(ab: torch.Tensor, run_of: torch.Tensor, root: torch.Tensor, opaque: torch.Tensor):
    """ab (C, H, W) with each opaque pixel's values replaced by its region's mean."""
    runs = root.numel()
    region = root.index_select(0, run_of.long())  # (H*W,)
    flat = ab.reshape(ab.shape[0], -1)  # (C, H*W): ab, or ab and L
    sums = torch.zeros(flat.shape[0], runs).index_add_(1, region, flat)  # (C, R) at each region's root
    count = torch.zeros(runs).index_add_(0, region, torch.ones(region.numel()))
    mean = sums / count.clamp(min=1)
    keep = opaque.index_select(0, run_of.long())  # (H*W,)
    return torch.where(keep, mean.index_select(1, region), flat).view_as(ab)
