"""MemoPainter: few-shot colorization with memory-augmented networks (Yoo et al., CVPR 2019)."""

__version__ = "0.1.0"
