"""Hue rotation of training pairs: the gray image kept, ab and the color feature turned by the same angle."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from memopainter.color import ab_distribution, lab_to_rgb, rgb_to_lab, symmetric_kl
from memopainter.config import ConfigError, RunConfig
from memopainter.training.augment import (
    draw_rotations,
    rotate_ab,
    rotate_distribution,
    rotate_feature,
    rotate_palette,
)
from memopainter.training.checkpoint import load_checkpoint
from memopainter.training.loop import train


def flat_image(*colors: tuple[float, float, float]) -> torch.Tensor:
    """An sRGB image (3, 8, 8 * n) of vertical bands of Lab colors given as (L, a, b)."""
    bands = [lab_to_rgb(torch.tensor(c)[:, None, None].expand(3, 8, 8)) for c in colors]
    return torch.cat(bands, dim=2).clamp(0, 1)


def test_rotating_ab_keeps_chroma_and_adds_the_angle_to_the_hue() -> None:
    ab = torch.tensor([[[[30.0]], [[-12.0]]], [[[5.0]], [[40.0]]]])  # (2, 2, 1, 1)
    angles = torch.tensor([0.7, -2.0])
    turned = rotate_ab(ab, angles)
    assert torch.allclose(turned.norm(dim=1), ab.norm(dim=1))
    hue = torch.atan2(ab[:, 1], ab[:, 0])[:, 0, 0]
    turned_hue = torch.atan2(turned[:, 1], turned[:, 0])[:, 0, 0]
    difference = torch.remainder(turned_hue - hue - angles + math.pi, 2 * math.pi) - math.pi
    assert torch.allclose(difference, torch.zeros(2), atol=1e-6)


def test_a_turn_and_its_inverse_give_the_colors_back_and_zero_is_no_turn() -> None:
    ab = torch.randn(3, 2, 4, 5, generator=torch.Generator().manual_seed(0)) * 40
    angles = torch.tensor([0.3, 2.5, -1.0])
    assert torch.allclose(rotate_ab(rotate_ab(ab, angles), -angles), ab, atol=1e-4)
    assert torch.equal(rotate_ab(ab, torch.zeros(3)), ab)


@pytest.mark.parametrize("angle", [1.2, 2.5])
def test_the_turned_distribution_matches_the_distribution_of_the_turned_image(angle: float) -> None:
    colors = [(60.0, 25.0, 10.0), (45.0, -15.0, 20.0), (70.0, 5.0, -25.0)]  # in gamut at any hue
    c, s = math.cos(angle), math.sin(angle)
    turned_colors = [(L, c * a - s * b, s * a + c * b) for L, a, b in colors]
    original = ab_distribution(flat_image(*colors))[None]
    truth = ab_distribution(flat_image(*turned_colors))[None]
    turned = rotate_distribution(original, torch.tensor([angle]))
    assert turned.sum().item() == pytest.approx(1.0, abs=1e-5)
    # Well inside the memory's own match threshold (1.0 nats), while the turn itself moved it far beyond.
    assert symmetric_kl(turned, truth).item() < 0.6
    assert symmetric_kl(original, truth).item() > 5.0


def test_turning_a_distribution_by_zero_does_not_blur_it() -> None:
    original = ab_distribution(flat_image((60.0, 25.0, 10.0), (45.0, -15.0, 20.0)))[None]
    assert torch.allclose(rotate_distribution(original, torch.zeros(1)), original, atol=2e-3)


def test_a_turned_palette_has_the_same_lightness_and_chroma_at_a_turned_hue() -> None:
    colors = [(55.0, 20.0, 15.0), (65.0, -10.0, -20.0)] * 5  # ten colors, in gamut at any hue
    palette = flat_image(*colors)[:, 0, ::8].T.reshape(1, 30)  # one pixel of each band
    turned = rotate_palette(palette, torch.tensor([math.pi / 2]))
    lab = rgb_to_lab(palette.reshape(10, 3).T[:, None, :])[:, 0]  # (3, 10)
    turned_lab = rgb_to_lab(turned.reshape(10, 3).T[:, None, :])[:, 0]
    assert torch.allclose(turned_lab[0], lab[0], atol=0.05)
    assert torch.allclose(turned_lab[1:].norm(dim=0), lab[1:].norm(dim=0), atol=0.1)
    assert torch.allclose(turned_lab[1], -lab[2], atol=0.1) and torch.allclose(
        turned_lab[2], lab[1], atol=0.1
    )
    assert torch.allclose(rotate_palette(palette, torch.zeros(1)), palette, atol=1e-4)


def test_rotate_feature_refuses_a_feature_of_the_wrong_shape() -> None:
    with pytest.raises(ValueError, match="no 'rgb' feature of shape"):
        rotate_feature(torch.rand(2, 313), "rgb", torch.zeros(2))


@pytest.mark.parametrize("share", [0.0, 0.5, 1.0])
def test_a_share_of_the_images_is_turned_by_a_seeded_uniform_angle(share: float) -> None:
    angles = draw_rotations(2000, share, torch.Generator().manual_seed(1))
    again = draw_rotations(2000, share, torch.Generator().manual_seed(1))
    assert torch.equal(angles, again)
    assert (angles != 0).float().mean().item() == pytest.approx(share, abs=0.04)
    assert bool(((angles >= 0) & (angles < 2 * math.pi)).all())


def test_hue_rotation_needs_a_color_condition() -> None:
    with pytest.raises(ConfigError, match="train.hue_rotation needs memory.enabled"):
        RunConfig().override(["memory.enabled=false", "train.hue_rotation=0.5"])
    with pytest.raises(ConfigError, match=r"train.hue_rotation must be in \[0, 1\]"):
        RunConfig().override(["train.hue_rotation=1.5"])


def test_the_memory_keeps_the_true_colors_while_the_generator_sees_turned_ones(
    tmp_path: Path, sprite_dir: Path, cache_dir: Path, tiny_settings: tuple[str, ...]
) -> None:
    runs = {}
    for share in (0.0, 1.0):
        config = RunConfig().override([*tiny_settings, f"train.hue_rotation={share}"])
        runs[share] = load_checkpoint(
            train(config, sprite_dir, tmp_path / f"r{share}", progress=lambda _: None)
        )[0]
    memory_keys = [k for k in runs[0.0] if k.startswith(("memory.values", "memory.sources", "query_head."))]
    assert all(torch.equal(runs[0.0][k], runs[1.0][k]) for k in memory_keys)
    generator_keys = [k for k in runs[0.0] if k.startswith("generator.")]
    assert not all(torch.equal(runs[0.0][k], runs[1.0][k]) for k in generator_keys)
