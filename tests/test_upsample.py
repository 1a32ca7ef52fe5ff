"""Full-resolution color: guided upsampling keeps colors on their side of the input's own lines."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from memopainter.color import lab_to_rgb, rgb_to_lab
from memopainter.inference.fullres import prepare_image, recombine
from memopainter.inference.regions import region_mean_ab
from memopainter.inference.upsample import joint_bilateral, network_coordinates

SIZE, FULL = 64, 512  # the network's side, and a frame 8 times larger


def two_halves() -> tuple[torch.Tensor, torch.Tensor]:
    """A frame whose left half is dark and right half light (a sharp edge at x = 256), and a network ab that
    is red-ish on the left half of its samples and blue-ish on the right."""
    lab = torch.zeros(3, FULL, FULL)
    lab[0, :, : FULL // 2], lab[0, :, FULL // 2 :] = 30.0, 80.0
    rgb = lab_to_rgb(lab)
    ab = torch.zeros(2, SIZE, SIZE)
    ab[0, :, : SIZE // 2], ab[0, :, SIZE // 2 :] = 40.0, -40.0
    return rgb, ab


def a_channel(image) -> np.ndarray:
    rgb = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1)
    return rgb_to_lab(rgb)[1].numpy()


def test_bilinear_blurs_the_color_across_the_edge_and_guided_keeps_it_on_its_side() -> None:
    rgb, ab = two_halves()
    prepared = prepare_image(rgb, None, SIZE, None)
    bilinear, guided = (a_channel(recombine(prepared, ab, mode)) for mode in ("bilinear", "guided"))
    near = slice(FULL // 2 - 4, FULL // 2)  # the 4 px left of the edge: within one network pixel of it
    assert bilinear[100, near].min() < 25  # pulled toward the right half's -40
    assert guided[100, near].min() > 35
    far = slice(0, FULL // 2 - 16)
    np.testing.assert_allclose(guided[100, far], bilinear[100, far], atol=1.0)  # away from lines: the same


def test_guided_equals_bilinear_where_the_lightness_is_flat() -> None:
    ab = torch.randn(2, SIZE, SIZE, generator=torch.Generator().manual_seed(0)) * 20
    flat = torch.full((SIZE, SIZE), 50.0)
    rows = network_coordinates(40, 8, FULL, SIZE)
    cols = network_coordinates(FULL, 0, FULL, SIZE)
    out = joint_bilateral(ab, flat, torch.full((40, FULL), 50.0), rows, cols, torch.zeros(2, 40, FULL))
    assert out.shape == (2, 40, FULL)
    # With equal lightness everywhere it is a Gaussian-weighted average of the nearest samples.
    assert float(out.abs().max()) <= float(ab.abs().max())


def test_a_pixel_unlike_every_sample_takes_the_bilinear_color() -> None:
    ab = torch.full((2, SIZE, SIZE), 30.0)
    rows = network_coordinates(2, 0, SIZE, SIZE)
    cols = network_coordinates(2, 0, SIZE, SIZE)
    bilinear = torch.full((2, 2, 2), -7.0)
    out = joint_bilateral(ab, torch.zeros(SIZE, SIZE), torch.full((2, 2), 100.0), rows, cols, bilinear)
    torch.testing.assert_close(out, bilinear)


def test_the_library_refuses_an_unknown_upsampler(tmp_path, sprite_writer, tiny_settings, cache_dir) -> None:
    from memopainter.config import RunConfig
    from memopainter.inference import Colorizer
    from memopainter.training.loop import train

    sprite_writer(tmp_path / "data")
    config = RunConfig().override(list(tiny_settings))
    run = train(config, tmp_path / "data", tmp_path / "run", on_event=lambda _: None)
    colorizer = Colorizer.from_pretrained(run)
    image = np.zeros((20, 30, 4), dtype=np.uint8)
    image[..., 3] = 255
    for mode in ("guided", "region"):
        (out,) = colorizer(image, upsample=mode)
        assert out.size == (30, 20) and out.mode == "RGBA"
    with pytest.raises(ValueError, match="upsample must be one of bilinear, guided, region, got 'bicubic'"):
        colorizer(image, upsample="bicubic")


@pytest.mark.parametrize("seed", range(5))
def test_region_means_are_the_means_over_connected_components_of_equal_levels(seed: int) -> None:
    from skimage.measure import label

    generator = torch.Generator().manual_seed(seed)
    blocks = torch.randint(0, 3, (6, 8), generator=generator) * 20.0  # flat art: fills of 4 x 4 pixels
    lightness = blocks.repeat_interleave(4, 0).repeat_interleave(4, 1)  # (24, 32)
    alpha = torch.full((24, 32), 255, dtype=torch.uint8)
    alpha[5:9, 4:20] = 0  # transparent: no region
    ab = torch.randn(2, 24, 32, generator=generator)
    out = region_mean_ab(ab, lightness, alpha)
    levels = torch.where(alpha < 128, -1, torch.round(lightness / 2).long()).numpy()
    regions = label(levels, background=-1, connectivity=1)  # scikit-image as the reference
    for region in range(1, regions.max() + 1):
        inside = torch.from_numpy(regions == region)
        torch.testing.assert_close(
            out[:, inside], ab[:, inside].mean(1, keepdim=True).expand_as(ab[:, inside])
        )
    transparent = torch.from_numpy(levels == -1)
    assert torch.equal(out[:, transparent], ab[:, transparent])


def test_a_large_image_that_is_not_flat_art_keeps_its_colors() -> None:
    lightness = torch.rand(600, 600, generator=torch.Generator().manual_seed(0)) * 100  # noise: runs of 1 px
    ab = torch.randn(2, 600, 600)
    assert torch.equal(region_mean_ab(ab, lightness, None), ab)


def test_a_flat_region_takes_one_color_and_transparent_pixels_keep_theirs() -> None:
    lightness = torch.full((6, 8), 60.0)
    lightness[:, 4:] = 30.0  # two fills side by side
    ab = torch.randn(2, 6, 8, generator=torch.Generator().manual_seed(0))
    alpha = torch.full((6, 8), 255, dtype=torch.uint8)
    alpha[0, 0] = 0
    out = region_mean_ab(ab, lightness, alpha)
    left = torch.ones(6, 4, dtype=torch.bool)
    left[0, 0] = False
    expected = ab[:, :, :4][:, left].mean(1, keepdim=True).expand(2, 23)  # the 23 opaque pixels of the fill
    torch.testing.assert_close(out[:, :, :4][:, left], expected)
    torch.testing.assert_close(out[:, :, 4:], ab[:, :, 4:].mean((1, 2), keepdim=True).expand(2, 6, 4))
    assert torch.equal(out[:, 0, 0], ab[:, 0, 0])
