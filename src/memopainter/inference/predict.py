"""The core of inference on network-sized tensors: retrieve color conditions, run the generator, make RGB."""

from __future__ import annotations

import torch

from memopainter.color import ab_distribution, lab_to_rgb
from memopainter.data.preprocess import AB_SCALE, L_SCALE
from memopainter.networks.classification import annealed_mean
from memopainter.training.model import MemoPainter


@torch.no_grad()
def retrieve_conditions(
    model: MemoPainter, query_features: torch.Tensor, k: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k memory values per image (paper Figs. 4, 5): (B, k, value_dim), and their slots (B, k)."""
    if model.memory is None:
        raise ValueError("this model was trained without memory (--no-memory): it has no color conditions")
    k = min(k, model.memory.num_filled) or 1
    _, slots = model.memory.retrieve(model.query_head(query_features), k)  # (B, k)
    return model.memory.values[slots], slots


def palette_condition(colors: torch.Tensor, feature: str) -> torch.Tensor:
    """User colors (n, 3) in [0, 1], 1 <= n <= 10 -> the generator's condition (value_dim,) for `feature`.

    "rgb": the colors in the given order, repeated to 10 (as dominant palettes are topped up), flattened.
    "dist": the ab distribution of an image made of the colors in equal areas.
    """
    if colors.dim() != 2 or colors.shape[1] != 3 or not 1 <= colors.shape[0] <= 10:
        raise ValueError(f"palette colors must be shaped (n, 3) with 1 <= n <= 10, got {tuple(colors.shape)}")
    if not colors.is_floating_point() or not bool(((colors >= 0) & (colors <= 1)).all()):
        raise ValueError("palette colors must be floats in [0, 1]")
    if feature == "rgb":
        return colors[torch.arange(10) % colors.shape[0]].reshape(30)
    if feature == "dist":
        return ab_distribution(colors.T[:, None, :])  # one pixel per color: (3, 1, n)
    raise ValueError(f"unknown color feature {feature!r}; expected 'dist' or 'rgb'")


@torch.no_grad()
def predict_ab(model: MemoPainter, gray: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
    """Generator output in Lab units: gray (B, 1, S, S) as L / 100, cond (B, value_dim) -> ab (B, 2, S, S).

    A generator of head "bins" (313 logits) is decoded by the annealed mean at model.bins_temperature.
    """
    was_training = model.generator.training
    model.generator.eval()
    try:
        out = model.generator(gray, cond)  # (B, 2, S, S) ab / 110, or (B, 313, S, S) logits
        if model.generator.head == "bins":
            return annealed_mean(out, model.config.model.bins_temperature)
        return out * AB_SCALE
    finally:
        model.generator.train(was_training)


def lab_image(gray: torch.Tensor, ab: torch.Tensor) -> torch.Tensor:
    """L / 100 (B, 1, H, W) and ab in Lab units (B, 2, H, W) -> sRGB (B, 3, H, W) in [0, 1]."""
    # Clamp ab to the Lab range before converting: unbounded ab gives visible artifacts in saturated areas.
    return lab_to_rgb(torch.cat([gray * L_SCALE, ab.clamp(-128.0, 127.0)], dim=1))
