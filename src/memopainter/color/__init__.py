"""Color science: CIE Lab, CIEDE2000, the 313 ab bins, color features and their distances."""

from memopainter.color.bins import NUM_BINS, ab_bins, ab_distribution, nearest_bin, soft_encode
from memopainter.color.ciede2000 import ciede2000
from memopainter.color.distances import palette_distance, symmetric_kl
from memopainter.color.lab import lab_to_rgb, rgb_to_gray, rgb_to_lab

__all__ = [
    "NUM_BINS",
    "ab_bins",
    "ab_distribution",
    "ciede2000",
    "lab_to_rgb",
    "nearest_bin",
    "palette_distance",
    "rgb_to_gray",
    "rgb_to_lab",
    "soft_encode",
    "symmetric_kl",
]
