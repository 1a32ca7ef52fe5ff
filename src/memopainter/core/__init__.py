"""The trained model and its files: the MemoPainter bundle, building and loading it, checkpoints, run folders.

Training and inference both stand on this package and never import each other.
"""
