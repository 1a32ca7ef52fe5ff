"""The 313 ab bins of Zhang et al. (2016), nearest-bin lookup, Gaussian soft encoding and ab distributions."""

import math
from importlib import resources
from pathlib import Path

import pytest
import torch

from memopainter.color import NUM_BINS, ab_bins, ab_distribution, nearest_bin, rgb_to_lab, soft_encode
from memopainter.color.bins import soft_encode_sparse

DTYPES = [torch.float32, torch.float64]
REFERENCE_BINS = Path("/work/shared/reference/ab_bins_313.txt")
PACKAGED_BINS = resources.files("memopainter.color").joinpath("data/ab_bins_313.txt")


def _read_bins(text: str) -> torch.Tensor:
    rows = [line.split() for line in text.splitlines() if line.strip() and not line.startswith("#")]
    return torch.tensor([[float(a), float(b)] for a, b in rows], dtype=torch.float64)


def _flat_image(rgb: tuple[float, float, float], h: int, w: int, dtype: torch.dtype) -> torch.Tensor:
    return torch.tensor(rgb, dtype=dtype).view(3, 1, 1).expand(3, h, w).contiguous()


def _ab_of(rgb: tuple[float, float, float]) -> torch.Tensor:
    return rgb_to_lab(_flat_image(rgb, 1, 1, torch.float64))[1:, 0, 0]  # (2,)


def _random_images(b: int, dtype: torch.dtype, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, 3, 6, 5, generator=g, dtype=torch.float64).to(dtype)


def test_there_are_313_bins_on_a_grid_of_step_10():
    bins = ab_bins(torch.float64)
    assert NUM_BINS == 313
    assert bins.shape == (313, 2)
    assert torch.equal(bins, (bins / 10).round() * 10)
    assert len({tuple(row) for row in bins.tolist()}) == 313


def test_bins_follow_the_order_of_zhang_et_al_pts_in_hull():
    bins = ab_bins(torch.float64)
    assert bins[0].tolist() == [-90.0, 50.0]
    assert bins[1].tolist() == [-90.0, 60.0]
    assert bins[-1].tolist() == [100.0, 0.0]


def test_bins_come_in_the_requested_dtype():
    assert ab_bins().dtype == torch.float32
    assert ab_bins(torch.float64).dtype == torch.float64


@pytest.mark.skipif(not REFERENCE_BINS.exists(), reason="the shared reference table is not on this machine")
def test_packaged_bins_are_identical_to_the_reference_table():
    assert PACKAGED_BINS.read_bytes() == REFERENCE_BINS.read_bytes()
    assert torch.equal(ab_bins(torch.float64), _read_bins(REFERENCE_BINS.read_text()))


def test_ab_bins_returns_the_packaged_table_in_file_order():
    assert torch.equal(ab_bins(torch.float64), _read_bins(PACKAGED_BINS.read_text()))


@pytest.mark.parametrize("dtype", DTYPES)
def test_nearest_bin_of_each_centre_is_that_bin(dtype):
    assert torch.equal(nearest_bin(ab_bins(dtype)), torch.arange(313))


@pytest.mark.parametrize("dtype", DTYPES)
def test_nearest_bin_survives_perturbations_of_up_to_2(dtype):
    # Centres are 10 apart, so a point within 2 * sqrt(2) of a centre is far nearer to it than to any other.
    g = torch.Generator().manual_seed(0)
    offsets = torch.rand(4, 313, 2, generator=g, dtype=torch.float64) * 4.0 - 2.0
    perturbed = (ab_bins(torch.float64) + offsets).to(dtype)  # (4, 313, 2)
    assert torch.equal(nearest_bin(perturbed), torch.arange(313).expand(4, 313))


@pytest.mark.parametrize("dtype", DTYPES)
def test_soft_encoding_has_10_positive_weights_summing_to_1(dtype):
    g = torch.Generator().manual_seed(1)
    ab = (torch.rand(50, 2, generator=g, dtype=torch.float64) * 160.0 - 80.0).to(dtype)
    encoded = soft_encode(ab)
    assert encoded.shape == (50, 313)
    assert encoded.dtype == dtype
    assert ((encoded > 0).sum(-1) == 10).all()
    assert (encoded >= 0).all()
    torch.testing.assert_close(encoded.sum(-1), torch.ones(50, dtype=dtype))


def test_soft_encoding_spreads_over_the_10_nearest_bins():
    ab = torch.tensor([13.7, -21.2], dtype=torch.float64)
    d2 = ((ab_bins(torch.float64) - ab) ** 2).sum(-1)
    nearest_10 = set(d2.argsort()[:10].tolist())
    assert set(soft_encode(ab).nonzero().flatten().tolist()) == nearest_10


@pytest.mark.parametrize("dtype", DTYPES)
def test_soft_encoding_picks_the_10_nearest_bins_anywhere_in_the_ab_plane(dtype):
    # Covers the gamut border and beyond, where the nearest bins are far away on one side.
    g = torch.Generator().manual_seed(3)
    ab = torch.rand(3000, 2, generator=g, dtype=torch.float64) * 280.0 - 140.0
    d2, brute_force = (torch.cdist(ab, ab_bins(torch.float64)) ** 2).topk(11, largest=False)  # (3000, 11)
    # Drop near-ties (1st/2nd or 10th/11th bin within 0.05 squared units): float32 may order them either way.
    clear = (d2[:, 1] - d2[:, 0] > 0.05) & (d2[:, 10] - d2[:, 9] > 0.05)
    ab, brute_force = ab[clear], brute_force[clear, :10]
    assert len(ab) > 2900
    _, idx = soft_encode_sparse(ab.to(dtype))
    assert torch.equal(idx.sort(-1).values, brute_force.sort(-1).values)
    assert torch.equal(nearest_bin(ab.to(dtype)), brute_force[:, 0])


def test_soft_encoding_weights_are_gaussian_with_sigma_5():
    ab = torch.tensor([13.7, -21.2], dtype=torch.float64)
    weights = soft_encode(ab)
    # Bin 137 is (10, -20) and bin 155 is (20, -20); both are among the 10 nearest.
    assert ab_bins(torch.float64)[137].tolist() == [10.0, -20.0]
    assert ab_bins(torch.float64)[155].tolist() == [20.0, -20.0]
    d2_i = 3.7**2 + 1.2**2  # 15.13
    d2_j = 6.3**2 + 1.2**2  # 41.13
    expected_ratio = math.exp(-(d2_i - d2_j) / (2 * 5.0**2))  # exp(26 / 50) = 1.68203...
    assert weights[137].item() / weights[155].item() == pytest.approx(expected_ratio, rel=1e-9)
    assert expected_ratio == pytest.approx(1.6820276, rel=1e-6)


def test_dense_and_sparse_soft_encodings_agree():
    g = torch.Generator().manual_seed(2)
    ab = torch.rand(7, 2, generator=g, dtype=torch.float64) * 100.0 - 50.0
    weights, idx = soft_encode_sparse(ab)
    assert weights.shape == idx.shape == (7, 10)
    dense = soft_encode(ab)
    torch.testing.assert_close(dense.gather(-1, idx), weights, atol=0, rtol=0)


def test_soft_encoding_is_differentiable_with_respect_to_ab():
    ab = torch.tensor([[13.7, -21.2], [-40.3, 55.1], [3.3, 3.9]], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(soft_encode, (ab,), fast_mode=True)


@pytest.mark.parametrize("dtype", DTYPES)
def test_distribution_of_an_image_is_313_values_summing_to_1(dtype):
    dist = ab_distribution(_random_images(1, dtype)[0])
    assert dist.shape == (313,)
    assert dist.dtype == dtype
    assert (dist >= 0).all()
    assert dist.sum().item() == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("dtype", DTYPES)
def test_flat_color_image_puts_its_mass_on_the_bins_nearest_its_ab(dtype):
    red = (1.0, 0.0, 0.0)
    dist = ab_distribution(_flat_image(red, 4, 4, dtype))
    ab = _ab_of(red)  # (80.09, 67.20)
    assert dist.argmax().item() == nearest_bin(ab).item() == 283  # the bin at (80, 70)
    torch.testing.assert_close(dist.double(), soft_encode(ab), atol=1e-5, rtol=0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_batch_distribution_equals_per_image_distributions(dtype):
    images = _random_images(3, dtype, seed=3)
    batched = ab_distribution(images)
    assert batched.shape == (3, 313)
    for i in range(3):
        torch.testing.assert_close(batched[i], ab_distribution(images[i]))


@pytest.mark.parametrize("dtype", DTYPES)
def test_transparent_pixels_do_not_count(dtype):
    half_and_half = _flat_image((1.0, 0.0, 0.0), 4, 6, dtype)
    half_and_half[:, :, 3:] = torch.tensor([0.0, 0.0, 1.0], dtype=dtype).view(3, 1, 1)
    alpha = torch.ones(4, 6, dtype=dtype)
    alpha[:, 3:] = 0.0  # the blue half
    masked = ab_distribution(half_and_half, alpha)
    torch.testing.assert_close(masked, ab_distribution(_flat_image((1.0, 0.0, 0.0), 4, 6, dtype)))
    assert not torch.allclose(ab_distribution(half_and_half), masked)


def test_alpha_counts_pixels_at_or_above_one_half_as_opaque():
    image = _flat_image((1.0, 0.0, 0.0), 1, 2, torch.float64)
    image[:, 0, 1] = torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64)
    red_only = ab_distribution(image[:, :, :1])
    torch.testing.assert_close(ab_distribution(image, torch.tensor([[0.5, 0.49]])), red_only)
    assert not torch.allclose(ab_distribution(image, torch.tensor([[0.5, 0.5]])), red_only)


@pytest.mark.parametrize("alpha_shape", [(4, 6), (1, 4, 6), (1, 1, 4, 6)])
def test_alpha_of_a_single_image_may_carry_batch_and_channel_dims(alpha_shape):
    image = _random_images(1, torch.float64, seed=4)[0, :, :4, :5]
    image = torch.cat((image, image[:, :, :1]), dim=-1)  # (3, 4, 6)
    alpha = torch.ones(alpha_shape, dtype=torch.float64)
    torch.testing.assert_close(ab_distribution(image, alpha), ab_distribution(image))


def test_batched_alpha_masks_each_image_separately():
    images = _random_images(2, torch.float64, seed=5)  # (2, 3, 6, 5)
    alpha = torch.ones(2, 1, 6, 5, dtype=torch.float64)
    alpha[1, 0, :3] = 0.0
    batched = ab_distribution(images, alpha)
    torch.testing.assert_close(batched[0], ab_distribution(images[0]))
    torch.testing.assert_close(batched[1], ab_distribution(images[1, :, 3:]))


def test_fully_transparent_image_gets_the_uniform_distribution():
    image = _flat_image((1.0, 0.0, 0.0), 4, 4, torch.float64)
    dist = ab_distribution(image, torch.zeros(4, 4))
    torch.testing.assert_close(dist, torch.full((313,), 1.0 / 313, dtype=torch.float64))


@pytest.mark.parametrize("alpha_shape", [(6, 4), (16,), (2, 4, 6), (1, 2, 4, 6)])
def test_alpha_that_does_not_match_the_image_is_refused(alpha_shape):
    image = _flat_image((1.0, 0.0, 0.0), 4, 6, torch.float64)
    with pytest.raises(ValueError, match="alpha must be shaped"):
        ab_distribution(image, torch.ones(alpha_shape))


def test_distribution_rejects_images_without_3_channels():
    with pytest.raises(ValueError, match=r"rgb must be shaped \(3, H, W\)"):
        ab_distribution(torch.rand(4, 4, 3))
