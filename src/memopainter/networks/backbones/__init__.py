"""ImageNet backbones for the memory's query network, behind one explicit registry, with offline weights."""

from memopainter.networks.backbones.backbone import Backbone, load_backbone
from memopainter.networks.backbones.registry import BACKBONES, BackboneSpec, get_spec
from memopainter.networks.backbones.weights import (
    WeightsError,
    fetch_weights,
    find_weights,
    how_to_get,
    search_dirs,
    verify_weights,
    weights_dir,
)

# Chosen by benchmarks/choose_backbone.py: best few-shot retrieval of gray sprites (Kenney, Wesnoth) of the
# backbones whose weights can be had offline; the paper's resnet18 needs a file no package registry ships.
DEFAULT_BACKBONE = "mobilenet_v2"

__all__ = [
    "BACKBONES",
    "DEFAULT_BACKBONE",
    "Backbone",
    "BackboneSpec",
    "WeightsError",
    "fetch_weights",
    "find_weights",
    "get_spec",
    "how_to_get",
    "load_backbone",
    "search_dirs",
    "verify_weights",
    "weights_dir",
]
