"""Neural networks of MemoPainter: the memory's query backbones and the colorization networks."""
