"""Line art from color images (data.lineart), on small synthetic images."""

from __future__ import annotations

from collections import deque

import pytest
import torch

from memopainter.data import lineart
from memopainter.data.images import composite_on_white
from memopainter.data.lineart import extract_lineart, is_lineart, lineart_input

BLUE = (0.35, 0.55, 0.9)
ORANGE = (0.95, 0.6, 0.2)
DARK_RED = (0.45, 0.08, 0.08)


def flat(h: int, w: int, color: tuple[float, float, float]) -> torch.Tensor:
    return torch.tensor(color).view(3, 1, 1).repeat(1, h, w)  # (3, H, W)


def ring(h: int, w: int, top: int, left: int, size: int, width: int = 1) -> torch.Tensor:
    """(H, W) bool: the border, `width` pixels wide, of the square of `size` at (top, left)."""
    mask = torch.zeros(h, w, dtype=torch.bool)
    mask[top : top + size, left : left + size] = True
    mask[top + width : top + size - width, left + width : left + size - width] = False
    return mask


def components(paper: torch.Tensor) -> list[set[tuple[int, int]]]:
    """4-neighbour connected components of the True pixels of (H, W): a plain flood fill as the reference."""
    h, w = paper.shape
    seen: set[tuple[int, int]] = set()
    found = []
    for start in map(tuple, paper.nonzero().tolist()):
        if start in seen:
            continue
        seen.add(start)
        part, queue = set(), deque([start])
        while queue:
            y, x = queue.popleft()
            part.add((y, x))
            for ny, nx in ((y - 1, x), (y + 1, x), (y, x - 1), (y, x + 1)):
                if 0 <= ny < h and 0 <= nx < w and paper[ny, nx] and (ny, nx) not in seen:
                    seen.add((ny, nx))
                    queue.append((ny, nx))
        found.append(part)
    return found


def sprite() -> tuple[torch.Tensor, torch.Tensor]:
    """A small sprite with fills, a dark outline, an antialiased edge and garbage under alpha 0."""
    generator = torch.Generator().manual_seed(0)
    rgb = torch.rand(3, 40, 50, generator=generator)  # (3, H, W) garbage where transparent
    alpha = torch.zeros(40, 50)
    alpha[5:35, 8:42] = 1.0
    alpha[5:35, 7] = 0.5  # antialiased edge
    rgb[:, 5:35, 8:42] = flat(30, 34, BLUE)
    rgb[:, 12:25, 15:30] = flat(13, 15, ORANGE)
    rgb[:, ring(40, 50, 5, 8, 30)] = 0.0
    return rgb, alpha


def test_extraction_is_deterministic_gray_and_in_range() -> None:
    rgb, alpha = sprite()
    first, second = extract_lineart(rgb, alpha), extract_lineart(rgb.clone(), alpha.clone())
    assert first.shape == (3, 40, 50) and first.dtype == torch.float32
    assert torch.equal(first, second)
    assert torch.equal(first[0], first[1]) and torch.equal(first[0], first[2])
    assert first.min() >= 0.0 and first.max() <= 1.0


def test_bands_of_rows_give_the_same_lines_as_one_band(monkeypatch: pytest.MonkeyPatch) -> None:
    rgb, alpha = sprite()
    whole = extract_lineart(rgb, alpha)
    monkeypatch.setattr(lineart, "ROWS_PER_BAND", 3)
    assert torch.equal(extract_lineart(rgb, alpha), whole)


def test_two_flat_fills_give_a_closed_one_pixel_line_on_the_darker_side() -> None:
    rgb = flat(24, 24, ORANGE)
    rgb[:, 8:16, 8:16] = flat(8, 8, BLUE)  # darker than orange: the line goes on the blue side
    lines = extract_lineart(rgb, None)[0]  # (H, W)
    corners = torch.zeros(24, 24, dtype=torch.bool)
    corners[[8, 8, 15, 15], [8, 15, 8, 15]] = True  # the median's 3 x 3 windows round each one off
    assert torch.equal(lines < 0.5, ring(24, 24, 8, 8, 8) & ~corners)
    paper = lines == 1.0
    assert paper[9:15, 9:15].all()  # inside the inner fill
    assert paper.sum() == 24 * 24 - 24  # every pixel but the line
    parts = components(paper)
    assert sorted(len(part) for part in parts) == [36, 24 * 24 - 60]  # inner square apart from the outer fill


def test_one_pixel_texture_inside_a_fill_draws_no_lines() -> None:
    rgb = flat(24, 24, ORANGE)
    rgb[:, 6:18, 6:18] = flat(12, 12, BLUE)
    dither = torch.zeros(24, 24, dtype=torch.bool)
    dither[8:16, 8:16] = (torch.arange(8)[:, None] + torch.arange(8)) % 4 == 0  # sparse specks, no ink
    rgb[:, dither] = torch.tensor((0.25, 0.4, 0.7)).view(3, 1)  # darker blue: a step of some 15 units
    lines = extract_lineart(rgb, None)[0]
    assert (lines[7:17, 7:17] == 1.0).all()  # the specks are gone
    assert (lines[6, 7:17] < 0.5).all() and (lines[7:17, 6] < 0.5).all()  # the fill's boundary is not


def test_one_pixel_shape_on_transparent_paper_keeps_its_line() -> None:
    rgb = flat(20, 20, ORANGE)
    alpha = torch.zeros(20, 20)
    alpha[3:17, 10] = 1.0  # a spear one pixel wide: the median would erase it from the colors
    lines = extract_lineart(rgb, alpha)[0]
    assert (lines[3:17, 10] == 0.0).all()


@pytest.mark.parametrize("seed", range(4))
def test_median_network_is_the_median_of_each_window(seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 4, (3, 7, 9), generator=generator).float()  # many ties
    x = x if seed % 2 else torch.rand(3, 7, 9, generator=generator)
    padded = torch.nn.functional.pad(x[None], (1, 1, 1, 1), mode="replicate")[0]
    windows = padded.unfold(1, 3, 1).unfold(2, 3, 1).reshape(3, 7, 9, 9)  # (C, H, W, 9)
    assert torch.equal(lineart._median3(x), windows.median(-1).values)


def test_fills_of_one_lightness_and_different_hue_are_separated() -> None:
    rgb = flat(12, 12, (0.5, 0.5, 0.5))
    rgb[:, :, 6:] = torch.tensor([0.62, 0.45, 0.42]).view(3, 1, 1)  # reddish gray of nearly the same L
    lines = extract_lineart(rgb, None)[0]
    assert (lines[:, 5:7].min(1).values < 0.5).all()  # a line down the boundary, every row


def test_dark_outline_stays_solid_black_and_its_inside_white() -> None:
    rgb = flat(30, 30, (1.0, 1.0, 1.0))
    outline = ring(30, 30, 5, 5, 20, width=3)
    rgb[:, 8:22, 8:22] = flat(14, 14, ORANGE)
    rgb[:, outline] = 0.02
    lines = extract_lineart(rgb, None)[0]
    assert (lines[outline] == 0.0).all()
    assert (
        lines[9:21, 9:21] == 1.0
    ).all()  # the fill inside: white, its boundary with the outline owned by ink
    assert (lines[:4] == 1.0).all()


def test_transparent_background_gives_an_outline_at_the_silhouette() -> None:
    generator = torch.Generator().manual_seed(1)
    rgb = torch.rand(3, 20, 20, generator=generator)  # garbage under alpha 0
    rgb[:, 4:16, 4:16] = 1.0  # a white sprite: only alpha tells it from the paper
    alpha = torch.zeros(20, 20)
    alpha[4:16, 4:16] = 1.0
    lines = extract_lineart(rgb, alpha)[0]
    assert torch.equal(lines < 0.5, ring(20, 20, 4, 4, 12))
    assert (lines[~ring(20, 20, 4, 4, 12)] == 1.0).all()


def black_strokes_on_transparent() -> tuple[torch.Tensor, torch.Tensor]:
    """OpenMoji's line art: black strokes with antialiased alpha, rgb under alpha 0 anything."""
    generator = torch.Generator().manual_seed(2)
    rgb = torch.rand(3, 64, 64, generator=generator)
    alpha = torch.zeros(64, 64)
    alpha[ring(64, 64, 8, 8, 48, width=4) | ring(64, 64, 24, 24, 16, width=3)] = 1.0
    alpha[ring(64, 64, 7, 7, 50)] = 0.4  # antialiasing outside the strokes: not judged
    alpha[ring(64, 64, 27, 27, 10)] = 0.6  # and inside: a mid-tone on white
    rgb[:, alpha > 0] = 0.0
    return rgb, alpha


def black_on_white() -> torch.Tensor:
    rgb = torch.ones(3, 64, 64)
    rgb[:, ring(64, 64, 10, 10, 40, width=2)] = 0.0
    rgb[:, 30, 12:50] = 0.0
    rgb[:, ring(64, 64, 9, 9, 42)] = 0.6  # antialiasing
    return rgb


def test_is_lineart_accepts_black_strokes_on_transparent_and_on_white() -> None:
    assert is_lineart(*black_strokes_on_transparent())
    assert is_lineart(black_on_white(), None)
    assert is_lineart(black_on_white(), torch.ones(64, 64))


def test_is_lineart_refuses_color_and_shaded_gray() -> None:
    rgb, alpha = sprite()
    assert not is_lineart(rgb, alpha)
    colored_lines = black_on_white()
    colored_lines[:, 20:40, 20:40] = flat(20, 20, DARK_RED)  # one colored fill in a drawing
    assert not is_lineart(colored_lines, None)
    gradient = torch.linspace(0.0, 1.0, 64).view(1, 1, 64).repeat(3, 64, 1)  # smooth shading, no color
    assert not is_lineart(gradient, None)


def test_is_lineart_refuses_dark_gray_and_half_transparent_silhouettes() -> None:
    alpha = torch.zeros(32, 32)
    alpha[8:24, 8:24] = 1.0
    assert not is_lineart(flat(32, 32, (0.22, 0.22, 0.22)), alpha)  # dark gray (L 25): not black ink
    assert is_lineart(flat(32, 32, (0.0, 0.0, 0.0)), alpha)  # black: a spot black
    assert not is_lineart(flat(32, 32, (0.0, 0.0, 0.0)), alpha * 0.6)  # a shadow: gray on white


def test_is_lineart_of_blank_paper() -> None:
    assert is_lineart(torch.rand(3, 8, 8), torch.zeros(8, 8))
    assert is_lineart(torch.ones(3, 8, 8), None)


def test_lineart_input_keeps_line_art_and_extracts_from_anything_else() -> None:
    rgb, alpha = black_strokes_on_transparent()
    lines, extracted = lineart_input(rgb, alpha)
    assert not extracted
    expected = composite_on_white(torch.zeros(3, 64, 64), alpha)  # the strokes on white, nothing else
    torch.testing.assert_close(lines, expected, atol=2e-3, rtol=0.0)
    assert torch.equal(lines[0], lines[1]) and torch.equal(lines[0], lines[2])
    rgb, alpha = sprite()
    lines, extracted = lineart_input(rgb, alpha)
    assert extracted
    assert torch.equal(lines, extract_lineart(rgb, alpha))
