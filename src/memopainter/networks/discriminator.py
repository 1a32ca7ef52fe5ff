"""The conditional PatchGAN discriminator D(x, C, y) of MemoPainter (section 3.2, eq. 11).

It sees the gray image, the ab channels and the color feature. The feature is embedded to 16 values and
tiled over the image as 16 extra input channels, far cheaper than tiling all 313 bins.
"""

from __future__ import annotations

import torch
from torch import nn

# Three stride-2 and two stride-1 4x4 convs (padding 1) take S to S/8 - 2; at S = 16 the fourth conv would
# leave a 1x1 map for instance norm and the fifth nothing, so 32 (2x2 logits) is the smallest size.
MIN_IMAGE_SIZE = 32
COND_EMBED_DIM = 16
LEAKY_SLOPE = 0.2


class Discriminator(nn.Module):
    """PatchGAN on (L/100, ab/110, color feature) -> raw logits (B, 1, S/8 - 2, S/8 - 2); no sigmoid."""

    def __init__(self, image_size: int, cond_dim: int, base_channels: int = 32) -> None:
        super().__init__()
        assert image_size >= MIN_IMAGE_SIZE, image_size  # RunConfig.validate keeps the image size >= 32
        self.image_size = image_size
        self.cond_dim = cond_dim
        self.base_channels = base_channels
        self.cond_embed = nn.Linear(cond_dim, COND_EMBED_DIM) if cond_dim > 0 else None
        in_ch = 1 + 2 + (COND_EMBED_DIM if cond_dim > 0 else 0)
        b = base_channels
        # (in, out, stride, instance norm): pix2pix's 3-layer PatchGAN (70x70 receptive field), its norm
        # without affine parameters.
        layers = [(in_ch, b, 2, False), (b, 2 * b, 2, True), (2 * b, 4 * b, 2, True), (4 * b, 8 * b, 1, True)]
        blocks: list[nn.Module] = []
        for cin, cout, stride, norm in layers:
            # Instance norm removes a conv bias, so only the unnormalised first conv keeps one.
            blocks.append(nn.Conv2d(cin, cout, 4, stride=stride, padding=1, bias=not norm))
            if norm:
                blocks.append(nn.InstanceNorm2d(cout))
            blocks.append(nn.LeakyReLU(LEAKY_SLOPE, inplace=True))
        blocks.append(nn.Conv2d(8 * b, 1, 4, stride=1, padding=1))
        self.body = nn.Sequential(*blocks)

    def config(self) -> dict[str, int]:
        """Constructor arguments as plain values: `Discriminator(**d.config())` rebuilds the architecture."""
        return {"image_size": self.image_size, "cond_dim": self.cond_dim, "base_channels": self.base_channels}

    def forward(self, L: torch.Tensor, ab: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
        """L/100 (B, 1, S, S), ab/110 (B, 2, S, S), feature (B, cond_dim) or None -> logits (B, 1, h, w)."""
        size = self.image_size
        batch = L.shape[0]
        assert L.shape == (batch, 1, size, size) and ab.shape == (batch, 2, size, size), (L.shape, ab.shape)
        parts = [L, ab]
        if self.cond_embed is not None:
            assert cond is not None and cond.shape == (batch, self.cond_dim)
            embedded = self.cond_embed(cond)  # (B, 16)
            parts.append(embedded[:, :, None, None].expand(-1, -1, size, size))  # (B, 16, S, S)
        else:
            assert cond is None, "a discriminator with cond_dim 0 takes cond=None"
        return self.body(torch.cat(parts, dim=1))
