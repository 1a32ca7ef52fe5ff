"""Query descriptors: the lightness histogram, how blocks are joined, and old checkpoints keeping `pooled`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import train_tiny

from memopainter.config import ConfigError, RunConfig, load_config
from memopainter.data.dataset import image_lightness_histogram
from memopainter.data.descriptors import (
    HISTOGRAM_WEIGHT,
    LIGHTNESS_BINS,
    lightness_histogram,
    parse_descriptors,
    query_features,
)
from memopainter.data.images import load_image
from memopainter.inference import Colorizer
from memopainter.inference.colorizer import _lightness_histogram
from memopainter.inference.fullres import prepare_image


def test_the_histogram_counts_opaque_pixels_only() -> None:
    lightness = torch.tensor([[10.0, 10.0], [90.0, 90.0]])
    alpha = torch.tensor([[1.0, 1.0], [0.0, 0.0]])  # the light row is transparent
    shares = lightness_histogram(lightness, alpha, 16) ** 2
    assert float(shares.sum()) == pytest.approx(1.0)
    assert float(shares[1]) == pytest.approx(1.0)  # L 10 falls in bin 1 of 16 (6.25 to 12.5)
    both = lightness_histogram(lightness, None, 16) ** 2
    assert float(both[1]) == pytest.approx(0.5) and float(both[14]) == pytest.approx(0.5)
    assert float(lightness_histogram(lightness, torch.zeros(2, 2), 16).abs().sum()) == 0.0
    finer = lightness_histogram(lightness, None, 32) ** 2  # L 10 in bin 3 of 32 (9.375 to 12.5), L 90 in 28
    assert (
        finer.shape == (32,)
        and float(finer[3]) == pytest.approx(0.5)
        and float(finer[28]) == pytest.approx(0.5)
    )


def test_finer_bins_tell_apart_lightness_that_16_bins_merge() -> None:
    darker, lighter = torch.full((4, 4), 50.5), torch.full((4, 4), 55.5)  # both in bin 8 of 16 (50 to 56.25)
    assert torch.equal(lightness_histogram(darker, None, 16), lightness_histogram(lighter, None, 16))
    assert not torch.equal(lightness_histogram(darker, None, 32), lightness_histogram(lighter, None, 32))


def test_the_lightness_block_is_scaled_to_the_pooled_feature() -> None:
    pooled = torch.tensor([[3.0, 4.0], [0.0, 1.0]])  # norms 5 and 1
    histograms = torch.zeros(2, LIGHTNESS_BINS)
    histograms[:, 0] = 1.0
    joined = query_features(pooled, histograms, ("pooled", "lightness"))
    assert joined.shape == (2, 2 + LIGHTNESS_BINS)
    assert torch.equal(joined[:, :2], pooled)
    assert joined[:, 2:].norm(dim=1).tolist() == pytest.approx([5 * HISTOGRAM_WEIGHT, HISTOGRAM_WEIGHT])
    assert torch.equal(query_features(pooled, histograms, ("pooled",)), pooled)


@pytest.mark.parametrize("text", ["lightness", "pooled+pooled", "pooled+shape", ""])
def test_bad_descriptor_lists_are_refused_by_name(text: str) -> None:
    with pytest.raises(ValueError):
        parse_descriptors(text)
    with pytest.raises(ConfigError, match="memory.descriptors"):
        load_config(None, [f"memory.descriptors={text!r}"])


def test_a_saved_config_without_descriptors_means_the_pooled_feature_alone() -> None:
    assert RunConfig().memory.descriptors == "pooled+lightness"
    saved = RunConfig().to_dict()
    del saved["memory"]["descriptors"]
    assert RunConfig.from_dict(saved).memory.descriptors == "pooled"
    assert RunConfig.from_dict(RunConfig().to_dict()).memory.descriptors == "pooled+lightness"


def test_a_saved_config_without_bins_means_16_bins() -> None:
    assert RunConfig().memory.lightness_bins == LIGHTNESS_BINS == 32
    saved = RunConfig().to_dict()
    del saved["memory"]["lightness_bins"]
    assert RunConfig.from_dict(saved).memory.lightness_bins == 16
    assert RunConfig.from_dict(RunConfig().to_dict()).memory.lightness_bins == 32


@pytest.mark.parametrize("bins", [0, 1, 257])
def test_bad_bin_counts_are_refused_by_name(bins: int) -> None:
    with pytest.raises(ConfigError, match="memory.lightness_bins"):
        load_config(None, [f"memory.lightness_bins={bins}"])


def test_training_and_inference_compute_the_same_histogram(sprite_dir: Path) -> None:
    for path in sorted(sprite_dir.rglob("*.png"))[:3]:
        rgb, alpha = load_image(path)
        prepared = prepare_image(rgb, alpha, 32, None)  # what inference keeps: full-size L, 8-bit alpha
        expected = image_lightness_histogram(rgb, alpha, LIGHTNESS_BINS)
        assert torch.allclose(expected, _lightness_histogram(prepared, LIGHTNESS_BINS), atol=1e-3)


def test_each_kind_of_model_queries_with_its_own_descriptors(tmp_path: Path, tiny_settings) -> None:
    old = train_tiny(tmp_path / "old", [*tiny_settings, "memory.descriptors=pooled"])
    new = train_tiny(tmp_path / "new", tiny_settings)
    widths = {}
    for name, run in (("old", old), ("new", new)):
        colorizer = Colorizer.from_pretrained(run)
        widths[name] = colorizer.model.query_head.linear.in_features
        image = next((tmp_path / name / "data").rglob("*.png"))
        assert len(colorizer(image, top_k=2)) == 2
    assert widths["new"] == widths["old"] + LIGHTNESS_BINS
    # A run folder written before the key existed still says so: its config.json lacks it.
    saved = json.loads((old / "config.json").read_text(encoding="utf-8"))
    assert saved["memory"]["descriptors"] == "pooled"
