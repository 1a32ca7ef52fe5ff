"""Colorizing with a trained model: conditions from the memory or a palette, then the generator."""

from memopainter.inference.colorizer import Colorizer
from memopainter.inference.inputs import ImageLike, PaletteLike, image_tensors, parse_palette
from memopainter.inference.results import Colored, Failed, Prediction

__all__ = [
    "Colored",
    "Colorizer",
    "Failed",
    "ImageLike",
    "PaletteLike",
    "Prediction",
    "image_tensors",
    "parse_palette",
]
