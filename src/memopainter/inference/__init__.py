"""Colorizing with a trained model: conditions from the memory or a palette, then the generator."""

from memopainter.inference.colorizer import Colored, Colorizer, Failed, Prediction
from memopainter.inference.inputs import ImageLike, PaletteLike, image_tensors, parse_palette

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
