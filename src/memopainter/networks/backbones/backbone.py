"""The frozen backbone module the query network wraps, and `load_backbone`, the one way to build it."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from memopainter.networks.backbones.registry import BackboneSpec, get_spec
from memopainter.networks.backbones.weights import check_hash, read_state_dict, resolve_weights, sha256_file

_RANGE_TOLERANCE = 1e-3  # resampling filters overshoot [0, 1] by a hair


class Backbone(nn.Module):
    """A frozen CNN: sRGB (B, 3, H, W) in [0, 1] -> its own normalisation -> pooled features (B, feature_dim).

    Always in eval mode with no trainable parameter: BatchNorm keeps its ImageNet statistics even when a
    parent module calls `.train()`.
    """

    def __init__(self, spec: BackboneSpec, net: nn.Module, weights_sha256: str | None) -> None:
        super().__init__()
        self.name = spec.name
        self.feature_dim = spec.feature_dim
        self.input_size = spec.input_size
        self.weights_sha256 = weights_sha256
        self.net = net
        # Not persistent: they come from the registry, so checkpoints need not carry them.
        self.register_buffer("mean", torch.tensor(spec.mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(spec.std).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        super().train(False)

    def train(self, mode: bool = True) -> Backbone:
        """Stay in eval mode whatever `mode` is, so frozen BatchNorm statistics are never updated."""
        return super().train(False)

    def forward(self, rgb: torch.Tensor) -> torch.Tensor:
        """sRGB images (B, 3, H, W) in [0, 1] (gray images as gray RGB) -> features (B, feature_dim)."""
        if rgb.dim() != 4 or rgb.shape[1] != 3:
            raise ValueError(f"{self.name} backbone: rgb must be shaped (B, 3, H, W), got {tuple(rgb.shape)}")
        if not rgb.is_floating_point():
            raise TypeError(f"{self.name} backbone: rgb must be a floating point tensor, got {rgb.dtype}")
        low, high = float(rgb.min()), float(rgb.max())
        if low < -_RANGE_TOLERANCE or high > 1 + _RANGE_TOLERANCE:
            raise ValueError(f"{self.name} backbone: rgb must be in [0, 1], got [{low:.3g}, {high:.3g}]")
        return self.net.forward_features((rgb - self.mean) / self.std)  # (B, feature_dim)


def load_backbone(
    name: str, weights: str | Path | None = None, device: str | torch.device = "cpu"
) -> Backbone:
    """Build the registered backbone `name` with its ImageNet weights, frozen, in eval mode, on `device`.

    `weights` is an explicit file; otherwise the weights folders are searched (see `weights.py`). Missing or
    corrupt weights raise WeightsError with instructions: a real backbone never silently becomes a random
    one. Only `tiny`, which has no weights file, is built from its fixed seed when `weights` is None.
    """
    spec = get_spec(name)
    net = spec.constructor()
    digest = None
    if spec.weights_file is not None or weights is not None:
        path = resolve_weights(spec, weights)
        digest = sha256_file(path)
        check_hash(spec, path, digest)
        net.load_state_dict(read_state_dict(spec, path, digest, net.state_dict()))
    return Backbone(spec, net, digest).to(device)
