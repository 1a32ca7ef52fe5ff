"""Image metrics against ground truth: known answers, masking, and SSIM against scikit-image."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity

from memopainter.color import ciede2000, rgb_to_lab
from memopainter.evaluation.metrics import colorfulness, delta_e2000, opaque_mask, psnr, ssim


def flat(rgb: tuple[float, float, float], height: int = 16, width: int = 16) -> torch.Tensor:
    """A (3, H, W) float64 image of one colour."""
    return torch.tensor(rgb, dtype=torch.float64).view(3, 1, 1).expand(3, height, width).clone()


def noise(seed: int, height: int = 32, width: int = 40) -> torch.Tensor:
    """A seeded (3, H, W) float64 image of smooth-ish random colours in [0, 1]."""
    generator = torch.Generator().manual_seed(seed)
    coarse = torch.rand(1, 3, height // 4, width // 4, generator=generator, dtype=torch.float64)
    smooth = torch.nn.functional.interpolate(coarse, size=(height, width), mode="bilinear")[0]
    fine = torch.rand(3, height, width, generator=generator, dtype=torch.float64)
    return (0.8 * smooth + 0.2 * fine).clamp(0.0, 1.0)


def centre_mask(height: int = 32, width: int = 40) -> torch.Tensor:
    """A (H, W) bool mask: an opaque block in the middle, transparent around it."""
    mask = torch.zeros(height, width, dtype=torch.bool)
    mask[8:-8, 8:-8] = True
    return mask


def scramble_outside(image: torch.Tensor, mask: torch.Tensor, seed: int) -> torch.Tensor:
    """`image` with every pixel outside `mask` replaced by random values."""
    generator = torch.Generator().manual_seed(seed)
    garbage = torch.rand(image.shape, generator=generator, dtype=image.dtype)
    return torch.where(mask, image, garbage)


# Identical images.


def test_identical_images_have_delta_e_0_psnr_inf_and_ssim_1():
    image = noise(0)
    assert delta_e2000(image, image.clone()) == pytest.approx(0.0, abs=1e-9)
    assert psnr(image, image.clone()) == math.inf
    assert ssim(image, image.clone()) == pytest.approx(1.0, abs=1e-12)


# CIEDE2000.


def test_uniform_colour_shift_gives_the_ciede2000_of_the_two_colours():
    red, orange = (0.8, 0.2, 0.1), (0.9, 0.5, 0.1)
    expected = ciede2000(
        rgb_to_lab(flat(red, 1, 1)).flatten(), rgb_to_lab(flat(orange, 1, 1)).flatten()
    )  # one Lab triple each
    assert float(expected) > 10.0  # a real shift, not a rounding-level one
    assert delta_e2000(flat(red), flat(orange)) == pytest.approx(float(expected), rel=1e-9)


def test_delta_e_of_black_against_white_is_100():
    # L* 0 vs 100, a = b = 0: only the lightness term, S_L = 1 at mean L 50, so dE00 = 100 exactly.
    assert delta_e2000(flat((0.0, 0.0, 0.0)), flat((1.0, 1.0, 1.0))) == pytest.approx(100.0, abs=1e-3)


def test_delta_e_is_the_mean_over_pixels():
    # Left half identical, right half black vs white: mean of 0 and 100.
    pred, true = flat((0.0, 0.0, 0.0)), flat((0.0, 0.0, 0.0))
    true[:, :, 8:] = 1.0
    assert delta_e2000(pred, true) == pytest.approx(50.0, abs=1e-3)


# PSNR.


def test_uniform_difference_of_0_1_gives_20_db():
    # MSE = 0.1^2 = 0.01 -> 10 log10(1 / 0.01) = 20 dB.
    assert psnr(flat((0.5, 0.5, 0.5)), flat((0.6, 0.6, 0.6))) == pytest.approx(20.0, abs=1e-9)


def test_psnr_averages_the_squared_error_over_the_three_channels():
    # Only red differs by 0.3: MSE = 0.09 / 3 = 0.03 -> 10 log10(1 / 0.03) = 15.2288 dB.
    assert psnr(flat((0.2, 0.5, 0.5)), flat((0.5, 0.5, 0.5))) == pytest.approx(15.228787, abs=1e-6)


def test_psnr_of_black_against_white_is_0_db():
    assert psnr(flat((0.0, 0.0, 0.0)), flat((1.0, 1.0, 1.0))) == pytest.approx(0.0, abs=1e-12)


# SSIM.


@pytest.mark.parametrize("seed", [1, 2])
def test_ssim_matches_scikit_image(seed: int):
    true = noise(seed)
    pred = (true + 0.15 * (noise(seed + 10) - 0.5)).clamp(0.0, 1.0)
    reference = structural_similarity(
        pred.numpy(),
        true.numpy(),
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        data_range=1.0,
        channel_axis=0,
    )
    assert 0.2 < reference < 0.99  # a pair that actually tests the formula
    assert ssim(pred, true) == pytest.approx(reference, abs=1e-10)


def test_ssim_matches_scikit_image_on_float32_input():
    true = noise(3).float()
    pred = noise(4).float()
    reference = structural_similarity(
        pred.double().numpy(),
        true.double().numpy(),
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        data_range=1.0,
        channel_axis=0,
    )
    assert ssim(pred, true) == pytest.approx(reference, abs=1e-6)


def test_ssim_with_an_all_true_mask_equals_ssim_without_one():
    true, pred = noise(5), noise(6)
    everything = torch.ones(true.shape[1:], dtype=torch.bool)
    assert ssim(pred, true, everything) == pytest.approx(ssim(pred, true), abs=1e-12)


def test_ssim_of_flat_images_follows_the_luminance_term():
    # Flat images: variances 0, so SSIM = (2 mu_x mu_y + C1) / (mu_x^2 + mu_y^2 + C1), C1 = 1e-4.
    # mu 0.5 vs 0.7: (0.7 + 1e-4) / (0.74 + 1e-4) = 0.945987...
    expected = (2 * 0.5 * 0.7 + 1e-4) / (0.5**2 + 0.7**2 + 1e-4)
    assert ssim(flat((0.5, 0.5, 0.5)), flat((0.7, 0.7, 0.7))) == pytest.approx(expected, abs=1e-12)


def test_ssim_refuses_images_smaller_than_its_window():
    with pytest.raises(ValueError, match="at least 11 x 11"):
        ssim(flat((0.5, 0.5, 0.5), 10, 20), flat((0.5, 0.5, 0.5), 10, 20))


def test_ssim_refuses_a_mask_with_opaque_pixels_only_at_the_border():
    mask = torch.zeros(32, 40, dtype=torch.bool)
    mask[:3, :] = True
    with pytest.raises(ValueError, match="from the border"):
        ssim(noise(7), noise(8), mask)


# Colourfulness.


def test_gray_image_has_colorfulness_0():
    assert colorfulness(flat((0.4, 0.4, 0.4))) == 0.0
    ramp = torch.linspace(0.0, 1.0, 16, dtype=torch.float64).view(1, 1, 16).expand(3, 16, 16)
    assert colorfulness(ramp) == 0.0


def test_colorfulness_of_a_red_and_a_green_pixel():
    # Red (255, 0, 0): rg = 255, yb = 127.5. Green (0, 255, 0): rg = -255, yb = 127.5.
    # std_rg = 255, std_yb = 0, mean_rg = 0, mean_yb = 127.5 -> M = 255 + 0.3 * 127.5 = 293.25.
    image = torch.tensor([[[1.0, 0.0]], [[0.0, 1.0]], [[0.0, 0.0]]])  # (3, 1, 2)
    assert colorfulness(image) == pytest.approx(293.25, abs=1e-9)


def test_colorfulness_of_one_flat_colour_is_its_mean_term():
    # Pure blue: rg = 0, yb = -255 everywhere -> M = 0.3 * 255 = 76.5.
    assert colorfulness(flat((0.0, 0.0, 1.0))) == pytest.approx(76.5, abs=1e-9)


# Masking.


def test_pixels_outside_the_mask_do_not_change_any_metric():
    true, pred = noise(9), noise(10)
    mask = centre_mask()
    scrambled_pred, scrambled_true = scramble_outside(pred, mask, 11), scramble_outside(true, mask, 12)
    assert delta_e2000(scrambled_pred, scrambled_true, mask) == pytest.approx(
        delta_e2000(pred, true, mask), abs=1e-12
    )
    assert psnr(scrambled_pred, scrambled_true, mask) == pytest.approx(psnr(pred, true, mask), abs=1e-12)
    assert ssim(scrambled_pred, scrambled_true, mask) == pytest.approx(ssim(pred, true, mask), abs=1e-12)
    assert colorfulness(scrambled_pred, mask) == pytest.approx(colorfulness(pred, mask), abs=1e-9)
    # ...while unmasked, the scrambled pixels do count.
    assert psnr(scrambled_pred, scrambled_true) != pytest.approx(psnr(pred, true), abs=1e-3)
    assert ssim(scrambled_pred, scrambled_true) != pytest.approx(ssim(pred, true), abs=1e-3)


def test_identical_opaque_pixels_score_perfectly_whatever_lies_outside():
    true = noise(13)
    mask = centre_mask()
    pred = scramble_outside(true, mask, 14)
    assert delta_e2000(pred, true, mask) == pytest.approx(0.0, abs=1e-9)
    assert psnr(pred, true, mask) == math.inf
    assert ssim(pred, true, mask) == pytest.approx(1.0, abs=1e-12)


def test_masked_metrics_average_only_the_opaque_pixels():
    # Opaque left half: identical; transparent right half: black vs white.
    pred, true = flat((0.3, 0.3, 0.3)), flat((0.3, 0.3, 0.3))
    true[:, :, 8:] = 1.0
    mask = torch.zeros(16, 16, dtype=torch.bool)
    mask[:, :8] = True
    assert delta_e2000(pred, true, mask) == pytest.approx(0.0, abs=1e-9)
    assert psnr(pred, true, mask) == math.inf


def test_float_alpha_is_opaque_from_one_half():
    alpha = torch.tensor([[0.0, 0.49, 0.5, 1.0]])
    assert opaque_mask(alpha, 1, 4).tolist() == [[False, False, True, True]]


def test_float_alpha_and_its_bool_mask_give_the_same_result():
    true, pred = noise(15), noise(16)
    alpha = centre_mask().double() * 0.9 + 0.05  # 0.05 outside, 0.95 inside
    assert delta_e2000(pred, true, alpha) == pytest.approx(delta_e2000(pred, true, centre_mask()), abs=1e-12)


def test_none_mask_counts_every_pixel():
    assert opaque_mask(None, 2, 3).tolist() == [[True] * 3] * 2


# Input errors.


def test_images_outside_0_1_are_refused():
    image = flat((0.5, 0.5, 0.5)) * 255
    with pytest.raises(ValueError, match=r"pred_rgb must hold values in \[0, 1\]"):
        psnr(image, flat((0.5, 0.5, 0.5)))


def test_images_of_different_shapes_are_refused():
    with pytest.raises(ValueError, match="differ in shape"):
        delta_e2000(flat((0.5, 0.5, 0.5), 16, 16), flat((0.5, 0.5, 0.5), 16, 17))


def test_channels_last_images_are_refused():
    with pytest.raises(ValueError, match=r"true_rgb must be shaped \(3, H, W\)"):
        ssim(flat((0.5, 0.5, 0.5)), flat((0.5, 0.5, 0.5), 16, 3).permute(1, 2, 0))


def test_integer_images_are_refused():
    with pytest.raises(TypeError, match="rgb must be a floating point"):
        colorfulness(torch.zeros(3, 4, 4, dtype=torch.uint8))


def test_integer_alpha_is_refused():
    with pytest.raises(TypeError, match="mask must be bool or float alpha"):
        psnr(flat((0.5, 0.5, 0.5)), flat((0.6, 0.6, 0.6)), torch.full((16, 16), 255, dtype=torch.uint8))


def test_a_mask_of_the_wrong_size_is_refused():
    with pytest.raises(ValueError, match=r"mask must be shaped \(H, W\) = \(16, 16\)"):
        psnr(flat((0.5, 0.5, 0.5)), flat((0.6, 0.6, 0.6)), torch.ones(16, 15, dtype=torch.bool))


def test_an_empty_mask_is_refused():
    with pytest.raises(ValueError, match="mask selects no pixels"):
        delta_e2000(flat((0.5, 0.5, 0.5)), flat((0.6, 0.6, 0.6)), torch.zeros(16, 16, dtype=torch.bool))


def test_numpy_arrays_are_refused_with_a_clear_message():
    with pytest.raises(TypeError, match="pred_rgb must be a torch.Tensor"):
        psnr(np.zeros((3, 4, 4)), flat((0.5, 0.5, 0.5), 4, 4))
