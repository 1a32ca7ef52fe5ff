"""Default memory settings per color feature, and the default memory size."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MemorySettings:
    """Retrieval and loss settings of one color feature."""

    top_k: int  # neighbours searched for the triplet loss's positive and negative
    threshold: float  # color distance below which two values match (delta of eqs. 5, 6, 8, 9)
    margin: float  # alpha of eq. 7


# Thresholds calibrated on class-labelled sprites (README, "Memory thresholds"): 1.0 puts 86% of Kenney's
# and 93% of Wesnoth's same-class pairs below it and 3% and 6% of other-class pairs; 8.0 does the same for
# palettes (96% / 5% on Kenney). Our symmetric_kl (natural log, both directions, eps-smoothed) is not the
# public reimplementation's one-sided log10 KL, so its 0.5-0.8 does not transfer; palette_distance is a
# Chamfer mean of CIEDE2000, below an index-paired mean.
_DEFAULTS = {
    "dist": MemorySettings(top_k=256, threshold=1.0, margin=0.1),
    "rgb": MemorySettings(top_k=32, threshold=8.0, margin=0.1),
}


def default_settings(feature: str) -> MemorySettings:
    """Default top_k, threshold and margin for feature "dist" or "rgb"."""
    if feature not in _DEFAULTS:
        raise ValueError(f"feature must be one of {sorted(_DEFAULTS)}, got {feature!r}")
    return _DEFAULTS[feature]


def default_memory_size(num_images: int) -> int:
    """Memory slots for a training set of `num_images`: 1.2 x as many, rounded up."""
    if isinstance(num_images, bool) or not isinstance(num_images, int) or num_images < 1:
        raise ValueError(f"num_images must be a positive int, got {num_images!r}")
    return -(-num_images * 6 // 5)  # exact ceil(1.2 n) in integers; 1.2 * n in floats overshoots at n = 10
