"""The learned part of the query network (paper eq. 2): q = normalise(W x + b) on frozen backbone features."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class QueryHead(nn.Module):
    """Linear(descriptor_dim, key_dim) then L2 normalisation; the only part of the query path that learns.

    The frozen backbone (memopainter.networks.backbones) runs once per image and its descriptors (pooled
    features, lightness histogram: memopainter.data.descriptors) are cached, so training feeds this head the
    cached descriptors directly.
    """

    def __init__(self, descriptor_dim: int, key_dim: int = 512) -> None:
        super().__init__()
        self.linear = nn.Linear(descriptor_dim, key_dim)

    def forward(self, descriptors: torch.Tensor) -> torch.Tensor:
        """Descriptors (B, descriptor_dim) -> unit query keys (B, key_dim)."""
        return F.normalize(self.linear(descriptors), dim=1)
