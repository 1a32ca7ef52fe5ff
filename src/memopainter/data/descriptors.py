"""Query descriptors: what the memory's query head sees of a gray image.

The paper's query is the pooled feature of an ImageNet backbone (`pooled`). It keys on shape: two characters
drawn alike, or one emoji in six skin tones, pool to nearly the same feature although their lightness
differs. `lightness` adds a histogram of the image's own lightness over its opaque pixels, which is exactly
what tells those apart in gray. The learned query head (a linear layer under the threshold triplet loss,
still unsupervised) decides how much each part counts.

Measured by `memopainter experiment descriptors` (docs/results/descriptors-*, seeds 0-2, 32 bins against
`pooled`): same-class top-1 on the held-out frames Kenney 64% -> 86%, Wesnoth 71% -> 82%, emoji tones
20% -> 72%, and delta_e2000 9.86 -> 3.81, 13.86 -> 13.76, 14.18 -> 13.01. Averaging the pooled feature with
the mirrored image's (a second backbone pass), and histograms over a 2x2 or 3x3 grid of the image, lowered or
did not move top-1 in prototypes; not kept.

A model's descriptors and bins are stored in its config (memory.descriptors, memory.lightness_bins); a
checkpoint saved before they existed uses `pooled` alone, one saved before the bins were stored 16 bins, and
each colorizes exactly as before.
"""

from __future__ import annotations

import torch

DESCRIPTORS = ("pooled", "lightness")  # the registry, in the order their blocks are concatenated
DEFAULT = "pooled+lightness"  # memory.descriptors of a new run
LEGACY = "pooled"  # what a saved config without memory.descriptors was trained with
# L from 0 to 100 in steps of 3.125: finer than 16 bins (steps of 6.25), which merged the lightness of
# Kenney's differently colored card backs and tanks; 24, 32 and 64 bins were measured (top-1 84%, 86%, 86%).
LIGHTNESS_BINS = 32
LEGACY_LIGHTNESS_BINS = 16  # what a saved config without memory.lightness_bins was trained with
# The lightness block's norm as a multiple of the pooled block's, per image, so the weighting does not depend
# on the backbone. 1 and 2 were measured in a prototype (top-1: Kenney 82% / 83%, Wesnoth 83% / 83%, emoji
# 60% / 69%).
HISTOGRAM_WEIGHT = 2.0


def parse_descriptors(text: str) -> tuple[str, ...]:
    """'pooled+lightness' -> ('pooled', 'lightness'); ValueError for an unknown name or a missing 'pooled'."""
    names = tuple(part.strip() for part in text.split("+"))
    unknown = [name for name in names if name not in DESCRIPTORS]
    if unknown:
        raise ValueError(f"unknown query descriptor {unknown[0]!r}; expected {' + '.join(DESCRIPTORS)}")
    if names[0] != "pooled" or len(set(names)) != len(names):
        raise ValueError(f"query descriptors must start with 'pooled' and name each once, got {text!r}")
    return names


def lightness_histogram(lightness: torch.Tensor, alpha: torch.Tensor | None, bins: int) -> torch.Tensor:
    """Square root of the share of the opaque pixels in each of `bins` lightness bins: (bins,), unit norm.

    lightness (H, W) is CIE L in [0, 100]; alpha (H, W) in [0, 1] weights each pixel (None: all opaque).
    """
    index = (lightness.flatten() * (bins / 100.0)).long().clamp(0, bins - 1)  # (H*W,)
    weights = torch.ones_like(lightness).flatten() if alpha is None else alpha.flatten().to(lightness.dtype)
    counts = torch.zeros(bins, dtype=torch.float64).index_add_(0, index, weights.double())
    if counts.sum() <= 0:  # nothing opaque: no lightness to tell, the block is zero
        return torch.zeros(bins)
    return (counts / counts.sum()).sqrt().float()


def query_features(
    pooled: torch.Tensor, histograms: torch.Tensor, descriptors: tuple[str, ...]
) -> torch.Tensor:
    """The query head's input (B, D) from pooled (B, F) backbone features and histograms (B, bins)."""
    blocks = [pooled]
    if "lightness" in descriptors:
        scale = HISTOGRAM_WEIGHT * pooled.norm(dim=1, keepdim=True)  # (B, 1)
        blocks.append(scale * histograms.to(pooled))
    return torch.cat(blocks, dim=1)


def descriptor_dim(backbone_dim: int, descriptors: tuple[str, ...], lightness_bins: int) -> int:
    """The query head's input width for a backbone of `backbone_dim` pooled features."""
    return backbone_dim + (lightness_bins if "lightness" in descriptors else 0)
