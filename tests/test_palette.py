"""Dominant palettes: Color Thief's MMCQ reproduced exactly, ordered by population, always n colors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from colorthief import ColorThief
from PIL import Image
from skimage import data

from memopainter.color.palette import colorthief_palette, dominant_palette, dominant_palettes

# colorthief 0.2.1 reads pixels with a Pillow call that Pillow deprecates; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:Image.Image.getdata:DeprecationWarning")

# Channel values of 4 mod 8 sit at the centre of Color Thief's 5-bit cells, so a box holding one
# such color reports it unchanged and expected palettes can be written out by hand.
RED = (228, 36, 28)
GREEN = (44, 164, 68)
BLUE = (36, 68, 196)
YELLOW = (244, 212, 36)
INK = (20, 12, 28)
WHITE = (255, 255, 255)
WHITE_CELL = (252, 252, 252)  # pure white's cell centre: what MMCQ reports for it


def _tensors(img: np.ndarray) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(H, W, 3 or 4) uint8 -> rgb (3, H, W) float32 in [0, 1] and alpha (H, W) or None."""
    t = torch.from_numpy(img.copy()).permute(2, 0, 1).float() / 255
    return t[:3], (t[3] if img.shape[2] == 4 else None)


def _ints(palette: torch.Tensor) -> list[tuple[int, int, int]]:
    return [tuple(int(v) for v in row) for row in (palette * 255).round().to(torch.int64).tolist()]


def _colorthief(tmp_path, img: np.ndarray, color_count: int, quality: int) -> list[tuple[int, int, int]]:
    path = tmp_path / "image.png"
    Image.fromarray(img).save(path)
    return ColorThief(str(path)).get_palette(color_count=color_count, quality=quality)


def _photo(name: str) -> np.ndarray:
    return np.asarray(Image.fromarray(getattr(data, name)()).resize((64, 64), Image.BILINEAR))


def _flat_sprite() -> np.ndarray:
    """32 x 32 RGBA: red body, blue feet, ink outline, white eye, on transparent magenta."""
    y, x = np.mgrid[:32, :32]
    img = np.zeros((32, 32, 4), np.uint8)
    img[...] = (255, 0, 255, 0)
    d = np.hypot(y - 14, x - 16)
    img[d < 12] = (*INK, 255)
    img[d < 10.5] = (*RED, 255)
    img[25:31, 8:14] = img[25:31, 18:24] = (*BLUE, 255)
    img[10:13, 18:21] = (*WHITE, 255)
    return img


def _shaded_sprite() -> np.ndarray:
    """32 x 32 RGBA: a shaded ball (hundreds of colors) on a transparent background."""
    y, x = np.mgrid[:32, :32].astype(np.float64)
    shade = np.clip(1.2 - np.hypot(y - 10, x - 11) / 20, 0, 1)
    img = np.zeros((32, 32, 4), np.uint8)
    img[..., 0] = 40 + 200 * shade
    img[..., 1] = 90 * shade + x
    img[..., 2] = 160 - 120 * shade + y
    img[..., 3] = np.where(np.hypot(y - 16, x - 16) < 14, 255, 0)
    return img


def _stripes(colors: list[tuple[int, int, int]], rows: list[int], width: int = 10) -> np.ndarray:
    """Horizontal bands, colors[i] over rows[i] rows, width pixels wide."""
    return np.concatenate([np.full((r, width, 3), c, np.uint8) for c, r in zip(colors, rows, strict=True)])


IMAGES = {
    **{name: _photo(name) for name in ("astronaut", "chelsea", "coffee", "rocket")},
    "flat_sprite": _flat_sprite(),
    "shaded_sprite": _shaded_sprite(),
}


@pytest.mark.parametrize("name", IMAGES)
@pytest.mark.parametrize(("color_count", "quality"), [(2, 1), (5, 2), (11, 1), (11, 10), (20, 3)])
def test_colorthief_palette_equals_colorthief_color_for_color_in_order(tmp_path, name, color_count, quality):
    img = IMAGES[name]
    rgb, alpha = _tensors(img)
    expected = _colorthief(tmp_path, img, color_count, quality)
    assert colorthief_palette(rgb, color_count, alpha, quality=quality) == expected


def test_colorthief_returns_one_color_fewer_than_asked_from_8_on(tmp_path):
    img = IMAGES["astronaut"]
    rgb, _ = _tensors(img)
    asked = [2, 3, 4, 5, 6, 7, 8, 10, 11, 20]
    returned = [3, 4, 4, 5, 6, 7, 7, 9, 10, 19]
    assert [len(_colorthief(tmp_path, img, c, 1)) for c in asked] == returned
    assert [len(colorthief_palette(rgb, c, quality=1)) for c in asked] == returned


@pytest.mark.parametrize("name", ["astronaut", "chelsea", "coffee", "rocket", "shaded_sprite"])
@pytest.mark.parametrize(("n", "color_count"), [(3, 2), (5, 5), (10, 11)])
def test_dominant_palette_holds_colorthiefs_colors_for_its_color_count(tmp_path, name, n, color_count):
    img = IMAGES[name]
    rgb, alpha = _tensors(img)
    expected = _colorthief(tmp_path, img, color_count, 2)
    ours = _ints(dominant_palette(rgb, n, alpha, quality=2, ignore_white=True))
    assert len(expected) == n
    assert sorted(ours) == sorted(expected)


def test_colorthief_invents_colors_of_empty_boxes_which_we_drop(tmp_path):
    img = _stripes([RED, BLUE, GREEN], [5, 3, 2])
    rgb, _ = _tensors(img)
    theirs = _colorthief(tmp_path, img, 11, 1)
    assert len(theirs) == 10
    assert not set(theirs) <= {RED, BLUE, GREEN}  # e.g. box centres such as (256, 4, 4)
    assert _ints(dominant_palette(rgb, 10, ignore_white=True)) == [RED, BLUE, GREEN] * 3 + [RED]


def test_flat_sprite_palette_is_its_colors_by_area_without_the_transparent_background():
    img = IMAGES["flat_sprite"]
    areas = [int(((img[..., :3] == c).all(-1) & (img[..., 3] > 0)).sum()) for c in (RED, INK, BLUE, WHITE)]
    assert areas == [340, 83, 72, 9]
    rgb, alpha = _tensors(img)
    assert _ints(dominant_palette(rgb, 6, alpha)) == [RED, INK, BLUE, WHITE_CELL, RED, INK]
    assert _ints(dominant_palette(rgb, 6, alpha, ignore_white=True)) == [RED, INK, BLUE, RED, INK, BLUE]


@pytest.mark.parametrize("n", [1, 2, 3, 10, 30, 255])
def test_one_color_image_gives_exactly_n_copies_of_its_color(n):
    rgb, _ = _tensors(np.full((8, 8, 3), GREEN, np.uint8))
    assert _ints(dominant_palette(rgb, n)) == [GREEN] * n


def test_three_color_image_repeats_its_colors_in_population_order_up_to_n():
    rgb, _ = _tensors(_stripes([BLUE, RED, GREEN], [3, 5, 2]))  # 30, 50, 20 pixels
    assert _ints(dominant_palette(rgb, 10)) == [RED, BLUE, GREEN] * 3 + [RED]


@pytest.mark.parametrize("n", [1, 2])
def test_fewer_than_three_colors_are_the_most_populous_of_the_three_color_palette(n):
    rgb, _ = _tensors(IMAGES["astronaut"])
    assert torch.equal(dominant_palette(rgb, n), dominant_palette(rgb, 3)[:n])


def test_colors_are_ordered_by_population():
    # 10, 20, 30 and 40 pixels, the smallest area first in the image.
    rgb, _ = _tensors(_stripes([YELLOW, BLUE, GREEN, RED], [1, 2, 3, 4]))
    assert _ints(dominant_palette(rgb, 4)) == [RED, GREEN, BLUE, YELLOW]


def test_colorthief_orders_by_population_times_box_volume_where_we_order_by_population():
    img = np.zeros((10, 10, 3), np.uint8)
    img[:5], img[5:8] = RED, GREEN
    img[8:] = np.linspace(0, 120, 20).astype(np.uint8).reshape(2, 10, 1)  # 20 grays: boxes of large volume
    rgb, _ = _tensors(img)
    theirs, ours = colorthief_palette(rgb, 5, quality=1), _ints(dominant_palette(rgb, 5))
    assert ours[0] == RED  # 50 pixels; the other 50 fall into at least two boxes
    assert theirs[:2] == [ours[1], RED]


def test_transparent_region_of_another_color_does_not_appear():
    img = np.zeros((10, 10, 4), np.uint8)
    img[:, :3] = (*RED, 255)
    img[:, 3:] = (*GREEN, 0)  # the larger area, but invisible
    rgb, alpha = _tensors(img)
    assert _ints(dominant_palette(rgb, 5, alpha)) == [RED] * 5
    assert torch.equal(dominant_palette(rgb, 5, alpha[None]), dominant_palette(rgb, 5, alpha))
    assert _ints(dominant_palette(rgb, 2)) == [GREEN, RED]  # without alpha both count


def test_pixels_count_from_alpha_one_half():
    rgb, _ = _tensors(_stripes([RED, GREEN], [1, 1], width=3))
    alpha = torch.tensor([[0.5, 0.5, 0.5], [0.49, 0.49, 0.49]])
    assert _ints(dominant_palette(rgb, 3, alpha)) == [RED] * 3


def test_fully_transparent_image_gives_n_whites():
    rgb, _ = _tensors(np.full((6, 6, 3), RED, np.uint8))
    palette = dominant_palette(rgb, 10, torch.zeros(6, 6))
    assert torch.equal(palette, torch.ones(10, 3))


def test_white_counts_by_default_and_is_dropped_with_ignore_white():
    rgb, _ = _tensors(_stripes([WHITE, RED], [6, 4]))
    assert _ints(dominant_palette(rgb, 2)) == [WHITE_CELL, RED]
    assert _ints(dominant_palette(rgb, 2, ignore_white=True)) == [RED, RED]
    only_white, _ = _tensors(np.full((4, 4, 3), WHITE, np.uint8))
    assert torch.equal(dominant_palette(only_white, 3, ignore_white=True), torch.ones(3, 3))


def test_quality_samples_every_qth_pixel_in_row_major_order():
    img = np.zeros((4, 4, 3), np.uint8)
    img[:, 0::2], img[:, 1::2] = RED, BLUE  # even width: a stride of 2 only ever lands on red
    rgb, _ = _tensors(img)
    assert _ints(dominant_palette(rgb, 2, quality=2)) == [RED, RED]
    assert set(_ints(dominant_palette(rgb, 2, quality=1))) == {RED, BLUE}


def test_two_calls_give_the_same_palette():
    rgb, _ = _tensors(IMAGES["coffee"])
    assert torch.equal(dominant_palette(rgb), dominant_palette(rgb))


def test_batch_equals_one_call_per_image():
    images = [IMAGES["flat_sprite"], IMAGES["shaded_sprite"], np.zeros((32, 32, 4), np.uint8)]
    rgb = torch.stack([_tensors(img)[0] for img in images])  # (3, 3, 32, 32)
    alpha = torch.stack([_tensors(img)[1] for img in images])  # (3, 32, 32)
    batch = dominant_palettes(rgb, 8, alpha, quality=2)
    assert batch.shape == (3, 8, 3)
    for i in range(3):
        assert torch.equal(batch[i], dominant_palette(rgb[i], 8, alpha[i], quality=2))
    assert torch.equal(dominant_palettes(rgb, 8, alpha[:, None], quality=2), batch)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_dtype_is_preserved_and_values_lie_in_0_1(dtype):
    rgb, _ = _tensors(IMAGES["chelsea"])
    palette = dominant_palette(rgb.to(dtype))
    assert palette.dtype == dtype
    assert palette.shape == (10, 3)
    assert 0 <= palette.min() and palette.max() <= 1


GRAY = torch.full((3, 8, 8), 0.5)


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda: dominant_palette(torch.rand(4, 8, 8)), ValueError, r"rgb must be shaped \(3, H, W\)"),
        (lambda: dominant_palette(GRAY * 3), ValueError, r"rgb values must lie in \[0, 1\]"),
        (lambda: dominant_palette(GRAY * float("nan")), ValueError, "NaN"),
        (lambda: dominant_palette(GRAY.to(torch.uint8)), TypeError, "float tensor"),
        (lambda: dominant_palette(GRAY, 0), ValueError, r"n must be an integer in \[1, 255\]"),
        (lambda: dominant_palette(GRAY, 256), ValueError, "n must be"),
        (lambda: dominant_palette(GRAY, quality=0), ValueError, "quality must be"),
        (lambda: dominant_palette(GRAY, 10, torch.ones(8, 9)), ValueError, r"alpha must be shaped \(H, W\)"),
        (lambda: dominant_palette(GRAY, 10, torch.full((8, 8), 255.0)), ValueError, "alpha values must lie"),
        (lambda: dominant_palettes(GRAY), ValueError, r"rgb must be shaped \(B, 3, H, W\)"),
        (lambda: dominant_palettes(GRAY[None], 10, torch.ones(2, 8, 8)), ValueError, r"\(B, H, W\)"),
        (lambda: colorthief_palette(GRAY, 1), ValueError, "color_count must be"),
        (lambda: colorthief_palette(GRAY, 10, torch.zeros(8, 8)), ValueError, "no pixel left"),
    ],
)
def test_bad_arguments_raise_a_clear_error(call, error, message):
    with pytest.raises(error, match=message):
        call()
