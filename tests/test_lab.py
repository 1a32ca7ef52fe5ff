"""sRGB <-> CIE Lab (D65, 2 degree observer): values, round trips, the scikit-image reference, gradients."""

import numpy as np
import pytest
import torch
from skimage.color import lab2rgb, rgb2lab

from memopainter.color import lab_to_rgb, rgb_to_lab

DTYPES = [torch.float32, torch.float64]


def _random_rgb(shape: tuple[int, ...], dtype: torch.dtype, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(shape, generator=g, dtype=torch.float64).to(dtype)


def _pixel(r: float, g: float, b: float) -> torch.Tensor:
    return torch.tensor([r, g, b], dtype=torch.float64).view(3, 1, 1)


def _to_hwc(x: torch.Tensor) -> np.ndarray:
    return x.permute(1, 2, 0).double().numpy()


def test_white_is_lightness_100_and_neutral():
    lab = rgb_to_lab(_pixel(1.0, 1.0, 1.0)).flatten()
    assert lab[0].item() == pytest.approx(100.0, abs=1e-4)
    # a and b miss 0 by ~0.005 because scikit-image's sRGB matrix rows sum to (0.950456, 1, 1.088754),
    # not exactly to the D65 white (0.95047, 1, 1.08883); we keep its constants to match it to 1e-3.
    assert lab[1:].abs().max().item() < 0.01


def test_black_is_all_zero():
    lab = rgb_to_lab(_pixel(0.0, 0.0, 0.0)).flatten()
    assert lab.abs().max().item() < 1e-9


def test_pure_srgb_red_has_the_textbook_lab_value():
    lab = rgb_to_lab(_pixel(1.0, 0.0, 0.0)).flatten()
    torch.testing.assert_close(
        lab, torch.tensor([53.24, 80.09, 67.20], dtype=torch.float64), atol=0.01, rtol=0
    )


def test_grays_have_zero_chroma_and_increasing_lightness():
    grays = torch.linspace(0.0, 1.0, 11, dtype=torch.float64)
    lab = rgb_to_lab(grays.view(1, 1, 11).expand(3, 1, 11))  # (3, 1, 11)
    assert lab[1:].abs().max().item() < 0.01
    assert (lab[0, 0].diff() > 0).all()


@pytest.mark.parametrize("dtype", DTYPES)
def test_round_trip_recovers_random_colors(dtype):
    rgb = _random_rgb((2, 3, 16, 16), dtype)
    back = lab_to_rgb(rgb_to_lab(rgb))
    assert back.dtype == dtype
    assert (back - rgb).abs().max().item() < 1e-4


@pytest.mark.parametrize("dtype", DTYPES)
def test_rgb_to_lab_agrees_with_scikit_image(dtype):
    rgb = _random_rgb((3, 16, 16), dtype, seed=1)
    ours = rgb_to_lab(rgb)
    assert ours.dtype == dtype
    np.testing.assert_allclose(_to_hwc(ours), rgb2lab(_to_hwc(rgb)), atol=1e-3, rtol=0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_lab_to_rgb_agrees_with_scikit_image(dtype):
    lab = rgb_to_lab(_random_rgb((3, 16, 16), torch.float64, seed=2)).to(dtype)
    np.testing.assert_allclose(_to_hwc(lab_to_rgb(lab)), lab2rgb(_to_hwc(lab)), atol=1e-3, rtol=0)


def test_batch_conversion_equals_per_image_conversion():
    rgb = _random_rgb((4, 3, 5, 7), torch.float64, seed=3)
    batched = rgb_to_lab(rgb)
    assert batched.shape == (4, 3, 5, 7)
    for i in range(4):
        torch.testing.assert_close(batched[i], rgb_to_lab(rgb[i]), atol=1e-12, rtol=0)


def test_out_of_gamut_lab_is_clipped_unless_asked_not_to():
    saturated = torch.tensor([50.0, 120.0, -120.0], dtype=torch.float64).view(3, 1, 1)
    clipped = lab_to_rgb(saturated)
    raw = lab_to_rgb(saturated, clip=False)
    assert clipped.min().item() >= 0.0 and clipped.max().item() <= 1.0
    assert raw.min().item() < 0.0 or raw.max().item() > 1.0


def test_rgb_to_lab_passes_gradcheck_on_both_sides_of_every_segment_switch():
    # sRGB's curve switches at 0.04045; Lab's f(t) at t = 0.008856, which a gray reaches at sRGB ~0.0923.
    values = [0.001, 0.01, 0.03, 0.039, 0.042, 0.09, 0.095, 0.2, 0.5, 0.9, 0.99, 0.7]
    rgb = torch.tensor(values, dtype=torch.float64).view(3, 2, 2)
    grays = torch.tensor([0.09, 0.095, 0.039, 0.042], dtype=torch.float64).view(1, 2, 2).expand(3, 2, 2)
    image = torch.cat((rgb, grays), dim=-1).contiguous().requires_grad_()  # (3, 2, 4)
    assert torch.autograd.gradcheck(rgb_to_lab, (image,), eps=1e-7, atol=1e-6)


def test_lab_to_rgb_passes_gradcheck_in_gamut():
    values = [0.001, 0.01, 0.03, 0.039, 0.042, 0.09, 0.095, 0.2, 0.5, 0.9, 0.99, 0.7]
    lab = rgb_to_lab(torch.tensor(values, dtype=torch.float64).view(3, 2, 2)).requires_grad_()
    assert torch.autograd.gradcheck(lambda x: lab_to_rgb(x, clip=False), (lab,), eps=1e-7, atol=1e-6)


def test_gradients_are_finite_at_exactly_zero_and_one():
    rgb = torch.tensor([0.0, 1.0, 0.0, 1.0, 0.0, 0.0, 1.0, 1.0, 0.0, 1.0, 1.0, 0.0], dtype=torch.float64)
    rgb = rgb.view(3, 2, 2).requires_grad_()
    rgb_to_lab(rgb).sum().backward()
    assert torch.isfinite(rgb.grad).all()

    lab = rgb_to_lab(rgb.detach()).requires_grad_()
    lab_to_rgb(lab, clip=False).sum().backward()
    assert torch.isfinite(lab.grad).all()


@pytest.mark.parametrize("shape", [(4, 4), (8, 8, 3), (2, 4, 8, 8), (3,)])
def test_rgb_to_lab_rejects_shapes_without_a_channel_dim_of_3(shape):
    with pytest.raises(ValueError, match=r"rgb must be shaped \(3, H, W\)"):
        rgb_to_lab(torch.rand(shape))


def test_lab_to_rgb_rejects_shapes_without_a_channel_dim_of_3():
    with pytest.raises(ValueError, match=r"lab must be shaped \(3, H, W\)"):
        lab_to_rgb(torch.rand(8, 8, 3))


def test_integer_images_are_refused_rather_than_rescaled():
    with pytest.raises(TypeError, match="rgb must be a floating point tensor"):
        rgb_to_lab(torch.full((3, 2, 2), 255, dtype=torch.uint8))
