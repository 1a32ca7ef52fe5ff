"""A tiny CNN, randomly initialised from a fixed seed: a stand-in backbone for fast tests, never real use."""

from __future__ import annotations

import torch
from torch import nn


class TinyCNN(nn.Module):
    """Three strided conv + BN + ReLU layers and global average pooling -> 32-d; weights drawn from `seed`."""

    feature_dim = 32

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(8),
            nn.ReLU(inplace=True),
            nn.Conv2d(8, 16, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(16),
            nn.ReLU(inplace=True),
            nn.Conv2d(16, self.feature_dim, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(self.feature_dim),
            nn.ReLU(inplace=True),
        )
        # A private generator keeps the weights identical whatever the global RNG state is.
        generator = torch.Generator().manual_seed(seed)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu", generator=generator)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised images (B, 3, H, W) -> globally average-pooled features (B, 32)."""
        return self.features(x).mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Same as `forward_features`: the tiny network has no classifier."""
        return self.forward_features(x)
