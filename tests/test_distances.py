"""Feature distances: symmetric KL between ab distributions, order-invariant CIEDE2000 between palettes."""

import math

import pytest
import torch

from memopainter.color import ciede2000, palette_distance, rgb_to_lab, symmetric_kl

DTYPES = [torch.float32, torch.float64]

P = torch.tensor([0.2, 0.3, 0.5], dtype=torch.float64)
Q = torch.tensor([0.4, 0.4, 0.2], dtype=torch.float64)
# KL(p||q) + KL(q||p) = sum (p - q)(ln p - ln q) = 0.2 ln 2 + 0.1 ln(4/3) + 0.3 ln(5/2) = 0.44228...
P_Q_SYMMETRIC_KL = 0.2 * math.log(2.0) + 0.1 * math.log(4.0 / 3.0) + 0.3 * math.log(2.5)

RED = (0.9, 0.1, 0.1)
BLUE = (0.1, 0.2, 0.9)


def _random_distributions(
    shape: tuple[int, ...], seed: int, dtype: torch.dtype = torch.float64
) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(shape, generator=g, dtype=torch.float64)
    x = torch.where(x < 0.5, torch.zeros_like(x), x)  # about half the bins empty, as in real histograms
    return (x / x.sum(-1, keepdim=True)).to(dtype)


def _random_palettes(shape: tuple[int, ...], seed: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(shape, generator=g, dtype=torch.float64).to(dtype)


def _lab_color(rgb: torch.Tensor) -> torch.Tensor:
    return rgb_to_lab(rgb.view(3, 1, 1)).flatten()


def test_symmetric_kl_matches_the_hand_computation():
    assert P_Q_SYMMETRIC_KL == pytest.approx(0.442285, abs=1e-6)
    assert symmetric_kl(P, Q).item() == pytest.approx(P_Q_SYMMETRIC_KL, abs=1e-5)


def test_symmetric_kl_without_smoothing_is_exactly_the_textbook_value():
    assert symmetric_kl(P, Q, eps=0.0).item() == pytest.approx(P_Q_SYMMETRIC_KL, abs=1e-12)


def test_smoothing_mixes_eps_into_every_bin_and_renormalises():
    # With eps = 0.1 over 3 bins: p -> (0.3, 0.4, 0.6) / 1.3 and q -> (0.5, 0.5, 0.3) / 1.3.
    expected = (0.2 * math.log(5.0 / 3.0) + 0.1 * math.log(5.0 / 4.0) + 0.3 * math.log(2.0)) / 1.3
    assert symmetric_kl(P, Q, eps=0.1).item() == pytest.approx(expected, abs=1e-12)


def test_default_smoothing_moves_the_value_by_less_than_1e_5():
    effect = abs(symmetric_kl(P, Q).item() - symmetric_kl(P, Q, eps=0.0).item())
    assert 0.0 < effect < 1e-5


def test_symmetric_kl_of_identical_distributions_is_zero():
    p = _random_distributions((5, 313), seed=0)
    assert torch.equal(symmetric_kl(p, p), torch.zeros(5, dtype=torch.float64))


@pytest.mark.parametrize("dtype", DTYPES)
def test_symmetric_kl_is_finite_and_non_negative_with_empty_bins(dtype):
    p, q = (
        _random_distributions((50, 313), seed=1, dtype=dtype),
        _random_distributions((50, 313), seed=2, dtype=dtype),
    )
    assert (p == 0).any() and (q == 0).any()
    d = symmetric_kl(p, q)
    assert d.dtype == dtype
    assert torch.isfinite(d).all()
    assert (d > 0).all()


@pytest.mark.parametrize("dtype", DTYPES)
def test_disjoint_one_hot_distributions_are_far_apart_but_finite(dtype):
    p, q = torch.zeros(313, dtype=dtype), torch.zeros(313, dtype=dtype)
    p[0], q[1] = 1.0, 1.0
    # Two bins contribute (1 / Z) ln((1 + eps) / eps) each, with Z = 1 + 313 eps the renormalisation.
    eps = 1e-6
    expected = 2.0 / (1.0 + 313 * eps) * math.log((1.0 + eps) / eps)  # 27.622...
    assert symmetric_kl(p, q).item() == pytest.approx(expected, rel=1e-4)


def test_symmetric_kl_is_symmetric():
    p, q = _random_distributions((20, 313), seed=3), _random_distributions((20, 313), seed=4)
    torch.testing.assert_close(symmetric_kl(p, q), symmetric_kl(q, p), atol=1e-12, rtol=0)


def test_symmetric_kl_compares_each_query_with_its_k_candidates():
    queries, candidates = _random_distributions((3, 313), seed=5), _random_distributions((3, 4, 313), seed=6)
    d = symmetric_kl(queries.unsqueeze(1), candidates)  # (3, 1, 313) vs (3, 4, 313)
    assert d.shape == (3, 4)
    for b in range(3):
        for j in range(4):
            assert d[b, j].item() == pytest.approx(
                symmetric_kl(queries[b], candidates[b, j]).item(), abs=1e-12
            )


def test_palette_in_another_order_is_at_distance_zero():
    palette = _random_palettes((10, 3), seed=0)
    shuffled = palette[torch.randperm(10, generator=torch.Generator().manual_seed(1))]
    assert palette_distance(palette, shuffled).item() == pytest.approx(0.0, abs=1e-6)
    # Pairing colors by index would call these palettes different.
    lab, lab_shuffled = (rgb_to_lab(x.T.reshape(3, 1, 10)).reshape(3, 10).T for x in (palette, shuffled))
    assert ciede2000(lab, lab_shuffled).mean().item() > 10.0


def test_one_color_palettes_are_the_ciede2000_of_their_colors():
    red, blue = torch.tensor(RED, dtype=torch.float64), torch.tensor(BLUE, dtype=torch.float64)
    expected = ciede2000(_lab_color(red), _lab_color(blue)).item()
    assert palette_distance(red.view(1, 3), blue.view(1, 3)).item() == pytest.approx(expected, abs=1e-10)
    assert palette_distance(red, blue).item() == pytest.approx(expected, abs=1e-10)  # flattened, n = 1


def test_each_color_is_matched_to_its_nearest_color_in_the_other_palette():
    red, blue = torch.tensor(RED, dtype=torch.float64), torch.tensor(BLUE, dtype=torch.float64)
    d_red_blue = ciede2000(_lab_color(red), _lab_color(blue)).item()
    # {red, blue} -> {red}: mean(0, d) = d / 2;  {red} -> {red, blue}: 0;  averaged: d / 4.
    two = torch.stack((red, blue))
    assert palette_distance(two, red.view(1, 3)).item() == pytest.approx(d_red_blue / 4.0, abs=1e-10)


def test_flattened_palettes_give_the_same_distance():
    p1, p2 = _random_palettes((4, 10, 3), seed=2), _random_palettes((4, 10, 3), seed=3)
    torch.testing.assert_close(
        palette_distance(p1.reshape(4, 30), p2.reshape(4, 30)), palette_distance(p1, p2), atol=0, rtol=0
    )


@pytest.mark.parametrize("n1, n2", [(10, 10), (5, 8)])
def test_palette_distance_is_symmetric(n1, n2):
    p1, p2 = _random_palettes((6, n1, 3), seed=4), _random_palettes((6, n2, 3), seed=5)
    torch.testing.assert_close(palette_distance(p1, p2), palette_distance(p2, p1), atol=1e-10, rtol=0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_palette_distance_compares_each_query_with_its_k_candidates(dtype):
    queries, candidates = (
        _random_palettes((3, 1, 30), seed=6, dtype=dtype),
        _random_palettes((3, 5, 30), seed=7, dtype=dtype),
    )
    d = palette_distance(queries, candidates)
    assert d.shape == (3, 5)
    assert d.dtype == dtype
    for b in range(3):
        for j in range(5):
            single = palette_distance(queries[b, 0], candidates[b, j])
            torch.testing.assert_close(d[b, j], single, atol=1e-4, rtol=0)


def test_red_palette_is_nearer_to_an_orange_palette_than_to_a_blue_one():
    reds = torch.tensor([RED, (0.8, 0.2, 0.15), (0.7, 0.05, 0.1)])
    oranges = torch.tensor([(1.0, 0.5, 0.1), (0.9, 0.4, 0.05), (0.95, 0.55, 0.2)])
    blues = torch.tensor([BLUE, (0.05, 0.1, 0.7), (0.2, 0.3, 0.95)])
    to_orange, to_blue = palette_distance(reds, oranges).item(), palette_distance(reds, blues).item()
    assert 0.0 < to_orange < to_blue


def test_palette_distance_rejects_a_length_that_is_not_a_multiple_of_3():
    with pytest.raises(ValueError, match=r"a palette must be shaped \(\.\.\., n, 3\) or \(\.\.\., 3n\)"):
        palette_distance(torch.rand(31), torch.rand(30))


@pytest.mark.parametrize("distance", ["kl", "palette"])
def test_large_calls_processed_in_blocks_equal_one_query_at_a_time(distance):
    # 64 queries x 256 candidates is large enough to be split into cache-sized blocks internally.
    g = torch.Generator().manual_seed(11)
    if distance == "kl":
        fn = symmetric_kl
        queries = torch.softmax(3 * torch.randn(64, 1, 313, generator=g), -1)
        candidates = torch.softmax(3 * torch.randn(64, 256, 313, generator=g), -1)
    else:
        fn = palette_distance
        queries, candidates = torch.rand(64, 1, 30, generator=g), torch.rand(64, 256, 30, generator=g)
    together = fn(queries, candidates)
    one_by_one = torch.stack([fn(queries[i], candidates[i]) for i in range(64)])
    assert together.shape == (64, 256)
    torch.testing.assert_close(together, one_by_one, atol=1e-5, rtol=1e-5)
