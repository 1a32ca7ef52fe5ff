"""Colorizing with a trained model: conditions from the memory or a palette, then the generator."""
