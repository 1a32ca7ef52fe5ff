"""CIEDE2000: the 34 published pairs of Sharma, Wu & Dalal (2005), symmetry, scikit-image, broadcasting."""

import numpy as np
import pytest
import torch
from skimage.color import deltaE_ciede2000

from memopainter.color import ciede2000

# Sharma, Wu & Dalal, "The CIEDE2000 color-difference formula: implementation notes, supplementary test
# data, and mathematical observations", Color Res. Appl. 30(1), 2005, Table 1: L1, a1, b1, L2, a2, b2, dE00.
# Pairs 7-16 probe the neutral-color and hue-angle discontinuity rules that naive implementations get wrong.
SHARMA_TABLE_1 = [
    (50.0000, 2.6772, -79.7751, 50.0000, 0.0000, -82.7485, 2.0425),  # 1
    (50.0000, 3.1571, -77.2803, 50.0000, 0.0000, -82.7485, 2.8615),  # 2
    (50.0000, 2.8361, -74.0200, 50.0000, 0.0000, -82.7485, 3.4412),  # 3
    (50.0000, -1.3802, -84.2814, 50.0000, 0.0000, -82.7485, 1.0000),  # 4
    (50.0000, -1.1848, -84.8006, 50.0000, 0.0000, -82.7485, 1.0000),  # 5
    (50.0000, -0.9009, -85.5211, 50.0000, 0.0000, -82.7485, 1.0000),  # 6
    (50.0000, 0.0000, 0.0000, 50.0000, -1.0000, 2.0000, 2.3669),  # 7
    (50.0000, -1.0000, 2.0000, 50.0000, 0.0000, 0.0000, 2.3669),  # 8
    (50.0000, 2.4900, -0.0010, 50.0000, -2.4900, 0.0009, 7.1792),  # 9
    (50.0000, 2.4900, -0.0010, 50.0000, -2.4900, 0.0010, 7.1792),  # 10
    (50.0000, 2.4900, -0.0010, 50.0000, -2.4900, 0.0011, 7.2195),  # 11
    (50.0000, 2.4900, -0.0010, 50.0000, -2.4900, 0.0012, 7.2195),  # 12
    (50.0000, -0.0010, 2.4900, 50.0000, 0.0009, -2.4900, 4.8045),  # 13
    (50.0000, -0.0010, 2.4900, 50.0000, 0.0010, -2.4900, 4.8045),  # 14
    (50.0000, -0.0010, 2.4900, 50.0000, 0.0011, -2.4900, 4.7461),  # 15
    (50.0000, 2.5000, 0.0000, 50.0000, 0.0000, -2.5000, 4.3065),  # 16
    (50.0000, 2.5000, 0.0000, 73.0000, 25.0000, -18.0000, 27.1492),  # 17
    (50.0000, 2.5000, 0.0000, 61.0000, -5.0000, 29.0000, 22.8977),  # 18
    (50.0000, 2.5000, 0.0000, 56.0000, -27.0000, -3.0000, 31.9030),  # 19
    (50.0000, 2.5000, 0.0000, 58.0000, 24.0000, 15.0000, 19.4535),  # 20
    (50.0000, 2.5000, 0.0000, 50.0000, 3.1736, 0.5854, 1.0000),  # 21
    (50.0000, 2.5000, 0.0000, 50.0000, 3.2972, 0.0000, 1.0000),  # 22
    (50.0000, 2.5000, 0.0000, 50.0000, 1.8634, 0.5757, 1.0000),  # 23
    (50.0000, 2.5000, 0.0000, 50.0000, 3.2592, 0.3350, 1.0000),  # 24
    (60.2574, -34.0099, 36.2677, 60.4626, -34.1751, 39.4387, 1.2644),  # 25
    (63.0109, -31.0961, -5.8663, 62.8187, -29.7946, -4.0864, 1.2630),  # 26
    (61.2901, 3.7196, -5.3901, 61.4292, 2.2480, -4.9620, 1.8731),  # 27
    (35.0831, -44.1164, 3.7933, 35.0232, -40.0716, 1.5901, 1.8645),  # 28
    (22.7233, 20.0904, -46.6940, 23.0331, 14.9730, -42.5619, 2.0373),  # 29
    (36.4612, 47.8580, 18.3852, 36.2715, 50.5065, 21.2231, 1.4146),  # 30
    (90.8027, -2.0831, 1.4410, 91.1528, -1.6435, 0.0447, 1.4441),  # 31
    (90.9257, -0.5406, -0.9208, 88.6381, -0.8985, -0.7239, 1.5381),  # 32
    (6.7747, -0.2908, -2.4247, 5.8714, -0.0985, -2.2286, 0.6377),  # 33
    (2.0776, 0.0795, -1.1350, 0.9033, -0.0636, -0.5514, 0.9082),  # 34
]


def _sharma(dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    table = torch.tensor(SHARMA_TABLE_1, dtype=dtype)  # (34, 7)
    return table[:, 0:3], table[:, 3:6], table[:, 6]


def _random_lab(n: int, seed: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    unit = torch.rand(n, 3, generator=g, dtype=torch.float64)
    return (
        unit * torch.tensor([100.0, 256.0, 256.0], dtype=torch.float64)
        - torch.tensor([0.0, 128.0, 128.0], dtype=torch.float64)
    ).to(dtype)


def test_table_has_all_34_pairs():
    assert len(SHARMA_TABLE_1) == 34


def test_reproduces_every_published_pair_to_four_decimals():
    lab1, lab2, expected = _sharma(torch.float64)
    torch.testing.assert_close(ciede2000(lab1, lab2), expected, atol=1e-4, rtol=0)


def test_is_symmetric_on_every_published_pair():
    lab1, lab2, _ = _sharma(torch.float64)
    torch.testing.assert_close(ciede2000(lab1, lab2), ciede2000(lab2, lab1), atol=1e-12, rtol=0)


def test_reproduces_the_published_pairs_in_float32():
    lab1, lab2, expected = _sharma(torch.float32)
    d = ciede2000(lab1, lab2)
    assert d.dtype == torch.float32
    # Pair 14 sits exactly on the |h1' - h2'| = 180 degree tie of the mean-hue rule; float32 rounding
    # picks a side, giving either the published 4.8045 or pair 15's 4.7461 (the other branch).
    others = torch.arange(34) != 13
    torch.testing.assert_close(d[others], expected[others], atol=1e-4, rtol=0)
    assert min(abs(d[13].item() - 4.8045), abs(d[13].item() - 4.7461)) < 1e-4


def test_agrees_with_scikit_image_on_random_pairs():
    lab1, lab2 = _random_lab(2000, seed=0), _random_lab(2000, seed=1)
    expected = deltaE_ciede2000(lab1.numpy(), lab2.numpy())
    np.testing.assert_allclose(ciede2000(lab1, lab2).numpy(), expected, atol=1e-6, rtol=0)


def test_float32_stays_close_to_float64_on_random_pairs():
    lab1, lab2 = _random_lab(2000, seed=2), _random_lab(2000, seed=3)
    d32 = ciede2000(lab1.float(), lab2.float())
    assert d32.dtype == torch.float32
    torch.testing.assert_close(d32.double(), ciede2000(lab1, lab2), atol=1e-3, rtol=0)


def test_is_symmetric_on_random_pairs():
    lab1, lab2 = _random_lab(2000, seed=4), _random_lab(2000, seed=5)
    torch.testing.assert_close(ciede2000(lab1, lab2), ciede2000(lab2, lab1), atol=1e-10, rtol=0)


def test_identical_colors_are_at_distance_zero():
    lab = _random_lab(100, seed=6)
    assert ciede2000(lab, lab).abs().max().item() == 0.0


@pytest.mark.parametrize("b, k", [(4, 5), (200, 200)])  # 200 x 200 pairs is past the internal chunk size
def test_broadcasts_queries_against_candidates(b, k):
    queries, candidates = _random_lab(b, seed=7), _random_lab(k, seed=8)
    d = ciede2000(queries.view(b, 1, 3), candidates.view(1, k, 3))
    assert d.shape == (b, k)
    for i in (0, b - 1):
        torch.testing.assert_close(d[i], ciede2000(queries[i].expand(k, 3), candidates), atol=1e-12, rtol=0)


def test_keeps_leading_batch_dims():
    lab1, lab2 = _random_lab(24, seed=9), _random_lab(24, seed=10)
    d = ciede2000(lab1.view(2, 3, 4, 3), lab2.view(2, 3, 4, 3))
    assert d.shape == (2, 3, 4)
    torch.testing.assert_close(d.reshape(-1), ciede2000(lab1, lab2), atol=1e-12, rtol=0)


def test_rejects_inputs_that_are_not_lab_triples():
    with pytest.raises(ValueError, match="Lab triples must end in 3"):
        ciede2000(torch.zeros(5, 2), torch.zeros(5, 2))
