"""Dominant color palettes by Color Thief's modified median cut quantization (MMCQ), vectorized.

Color Thief 0.2.1 (a Python port of Leptonica's MMCQ) is reproduced step by step: the 5-bit-per-channel
histogram, the boxes and their counts, the median cut along the longest side, the two phases (boxes split
by population up to 75 % of the target, then by population x volume) with the same stable priority
queues, and the same box colors. The box sums are numpy reductions over the 32^3 histogram instead of
Python loops over every cell: about 1 ms for a 64 x 64 image, some 90 times faster than Color Thief.

How `n` maps to Color Thief's `color_count`: `get_palette(color_count=c)` does not return c colors. Its
second phase restarts its color counter at 1, so for c >= 8 it returns c - 1 boxes, for 4 <= c <= 7
it returns c (c = 8 also gives 7), c = 3 gives 4 and c = 2 gives 3; c < 2 raises. `dominant_palette(n)`
therefore runs MMCQ with c = n + 1 for n >= 7, c = n for 4 <= n <= 6 and c = 2 for n <= 3 (then keeps
the first n). Its boxes are exactly Color Thief's, in the same order; what differs is what is returned:

- boxes that hold no pixel are dropped. Color Thief splits a box whose pixels all lie in one plane
  along its longest side into that box and an empty one, and reports the empty box's centre as a color
  (up to 256 on a channel): a flat image gives 1 real and c - 2 invented colors;
- the colors are then ordered by population (most pixels first, ties kept in Color Thief's order of
  population x volume), and topped up to exactly n by repeating them in that order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import NamedTuple

import numpy as np
import torch

SIGBITS = 5  # Color Thief keeps the 5 high bits of each 8-bit channel
_SIDE = 1 << SIGBITS  # 32 histogram cells per channel
_SHIFT = 8 - SIGBITS
_CELL = 1 << _SHIFT  # width of one cell in 8-bit units
_FRACT_BY_POPULATION = 0.75
_MAX_ITERATIONS = 1000
_WHITE_ABOVE = 250  # Color Thief skips pixels whose r, g and b are all above this
_MAX_N = 255  # Color Thief refuses more than 256 colors, and asks for n + 1 to return n


class _Box(NamedTuple):
    """A box of histogram cells, bounds inclusive per channel (r, g, b), with its pixel count."""

    lo: tuple[int, int, int]
    hi: tuple[int, int, int]
    count: int

    def volume(self) -> int:
        """Number of cells; 0 for the empty boxes that a cut can leave (lo = hi + 1 on one side)."""
        return (self.hi[0] - self.lo[0] + 1) * (self.hi[1] - self.lo[1] + 1) * (self.hi[2] - self.lo[2] + 1)

    def cells(self) -> tuple[slice, slice, slice]:
        """Index of this box into the (32, 32, 32) histogram."""
        (r1, g1, b1), (r2, g2, b2) = self.lo, self.hi
        return slice(r1, r2 + 1), slice(g1, g2 + 1), slice(b1, b2 + 1)


def _color_count_for(n: int) -> int:
    """The Color Thief `color_count` whose MMCQ run yields n boxes (3 for n <= 3)."""
    if n >= 7:
        return n + 1
    return n if n >= 4 else 2


def _median_cut(hist: np.ndarray, box: _Box) -> tuple[_Box, _Box | None]:
    """Split a box at the median of its longest side, with Color Thief's rules for the cut plane."""
    if box.count == 1:
        return box, None
    widths = [h - lo + 1 for lo, h in zip(box.lo, box.hi, strict=True)]
    axis = widths.index(max(widths))  # ties go to r, then g, then b
    others = tuple(a for a in range(3) if a != axis)
    partial = np.cumsum(hist[box.cells()].sum(axis=others)).tolist()  # pixels in planes lo..i of the axis
    total = partial[-1]
    lo, hi = box.lo[axis], box.hi[axis]
    i = lo + next(j for j, s in enumerate(partial) if s > total / 2)
    left, right = i - lo, hi - i
    # Cut halfway between the median plane and the far end of the longer side.
    d2 = min(hi - 1, int(i + right / 2)) if left <= right else max(lo, int(i - 1 - left / 2))
    # Move the cut so the first part holds pixels, then back so the second part does when it can.
    while d2 < lo or partial[d2 - lo] == 0:
        d2 += 1
    while partial[d2 - lo] == total and d2 - 1 >= lo and partial[d2 - 1 - lo] > 0:
        d2 -= 1
    count1 = partial[d2 - lo]
    hi1, lo2 = list(box.hi), list(box.lo)
    hi1[axis], lo2[axis] = d2, d2 + 1
    return _Box(box.lo, tuple(hi1), count1), _Box(tuple(lo2), box.hi, total - count1)


def _split(hist: np.ndarray, queue: list[_Box], key: Callable[[_Box], int], target: float) -> None:
    """One MMCQ phase: split the box with the largest key until the phase's color counter reaches target.

    The queue is Color Thief's: a list stably sorted ascending by key before each pop from its end, so
    boxes with equal keys come out in the same order. The counter starts at 1 in both phases and at
    least one box is taken, as in Color Thief.
    """
    n_color = 1
    for _ in range(_MAX_ITERATIONS):
        queue.sort(key=key)
        # The box with the largest key always holds pixels, so Color Thief's zero-count branch never runs.
        box = queue.pop()
        first, second = _median_cut(hist, box)
        queue.append(first)
        if second is None:
            # A single-pixel box comes back unsplit and stays the largest: Color Thief pops it again
            # until its iteration cap, changing nothing.
            return
        queue.append(second)
        n_color += 1
        if n_color >= target:
            return


def _mmcq_boxes(
    hist: np.ndarray, lo: tuple[int, int, int], hi: tuple[int, int, int], count: int, color_count: int
) -> list[_Box]:
    """Color Thief's `MMCQ.quantize` on a (32, 32, 32) histogram: its boxes, in its palette order."""
    queue = [_Box(lo, hi, count)]
    _split(hist, queue, lambda b: b.count, _FRACT_BY_POPULATION * color_count)
    queue.sort(key=lambda b: b.count)
    queue = queue[::-1]  # Color Thief refills its second queue by popping the first one
    _split(hist, queue, lambda b: b.count * b.volume(), color_count - len(queue))
    queue.sort(key=lambda b: b.count * b.volume())
    return queue[::-1]


def _box_color(hist: np.ndarray, box: _Box) -> tuple[int, int, int]:
    """Color Thief's box color: count-weighted mean of the cell centres, truncated to integers 0..255.

    An empty box gets its geometric centre, which can reach 256.
    """
    if box.count == 0:
        r, g, b = (int(_CELL * (lo + hi + 1) / 2) for lo, hi in zip(box.lo, box.hi, strict=True))
        return r, g, b
    sub = hist[box.cells()]
    color = []
    for axis in range(3):
        others = tuple(a for a in range(3) if a != axis)
        planes = sub.sum(axis=others)
        centres = (np.arange(box.lo[axis], box.hi[axis] + 1) * 2 + 1) * (_CELL // 2)  # (i + 0.5) * 8
        # Integer sums then one float division: bit-identical to Color Thief's float accumulation,
        # whose terms are all integers.
        color.append(int(int((planes * centres).sum()) / box.count))
    return color[0], color[1], color[2]


def _mmcq_on_histogram(hist: np.ndarray, color_count: int) -> list[_Box]:
    """MMCQ boxes of a non-empty histogram, starting from the bounding box of its occupied cells."""
    occupied = [np.flatnonzero(hist.sum(axis=others)) for others in ((1, 2), (0, 2), (0, 1))]
    lo = (int(occupied[0][0]), int(occupied[1][0]), int(occupied[2][0]))
    hi = (int(occupied[0][-1]), int(occupied[1][-1]), int(occupied[2][-1]))
    return _mmcq_boxes(hist, lo, hi, int(hist.sum()), color_count)


def _palette_from_histogram(hist: np.ndarray, n: int) -> list[tuple[int, int, int]]:
    """Up to n colors (0..255) of the non-empty MMCQ boxes, by population; [] for an empty histogram."""
    if not hist.any():
        return []
    boxes = _mmcq_on_histogram(hist, _color_count_for(n))
    boxes = sorted((b for b in boxes if b.count > 0), key=lambda b: -b.count)  # stable: ties keep MMCQ order
    return [_box_color(hist, b) for b in boxes[:n]]


def _histograms(rgb: np.ndarray, opaque: np.ndarray | None, ignore_white: bool) -> Iterator[np.ndarray]:
    """Sampled pixels rgb (B, 3, P) in [0, 1], opaque (B, P) -> per image (32, 32, 32) counts of kept ones."""
    u8 = np.rint(rgb * 255).astype(np.int32)  # (B, 3, P)
    keep = np.ones(u8[:, 0].shape, dtype=bool) if opaque is None else opaque.copy()  # (B, P)
    if ignore_white:
        keep &= ~(u8 > _WHITE_ABOVE).all(axis=1)
    q = u8 >> _SHIFT
    cell = (q[:, 0] << (2 * SIGBITS)) + (q[:, 1] << SIGBITS) + q[:, 2]  # (B, P)
    # One bincount per image: a single one over the batch would allocate B x 32^3 counts at once.
    for cell_i, keep_i in zip(cell, keep, strict=True):
        yield np.bincount(cell_i[keep_i], minlength=_SIDE**3).reshape(_SIDE, _SIDE, _SIDE)


def _numpy(t: torch.Tensor) -> np.ndarray:
    """A CPU numpy view or copy; half precision goes through float32, which numpy lacks for bfloat16."""
    t = t.detach().cpu()
    return (t.float() if t.dtype in (torch.float16, torch.bfloat16) else t).numpy()


def _sampled(
    rgb: torch.Tensor, alpha: torch.Tensor | None, quality: int
) -> tuple[np.ndarray, np.ndarray | None]:
    """Validate a batch; return the pixels Color Thief looks at, rgb (B, 3, P) and alpha (B, P) or None.

    Color Thief walks the row-major pixels with a stride of `quality`, transparent ones included.
    The work is done in numpy: tiny torch ops can stall for milliseconds on a busy machine, waiting
    for their intra-op threads.
    """
    if rgb.dim() != 4 or rgb.shape[1] != 3:
        raise ValueError(f"rgb must be shaped (B, 3, H, W), got {tuple(rgb.shape)}")
    if not rgb.is_floating_point():
        raise TypeError(f"rgb must be a float tensor in [0, 1], got {rgb.dtype}")
    if isinstance(quality, bool) or not isinstance(quality, int) or quality < 1:
        raise ValueError(f"quality must be an integer >= 1, got {quality!r}")
    b, _, h, w = rgb.shape
    pixels = _numpy(rgb).reshape(b, 3, h * w)[:, :, ::quality]
    if pixels.size and not (pixels.min() >= 0 and pixels.max() <= 1):
        raise ValueError("rgb values must lie in [0, 1] (and not be NaN)")
    if alpha is None:
        return pixels, None
    if alpha.dim() == 4 and alpha.shape[1] == 1:
        alpha = alpha[:, 0]
    if tuple(alpha.shape) != (b, h, w):
        raise ValueError(
            f"alpha must be shaped (B, H, W) or (B, 1, H, W) = {(b, h, w)}, got {tuple(alpha.shape)}"
        )
    alphas = _numpy(alpha).reshape(b, h * w)[:, ::quality]
    if alphas.size and not (alphas.min() >= 0 and alphas.max() <= 1):
        raise ValueError("alpha values must lie in [0, 1] (and not be NaN)")
    return pixels, alphas


def _single(rgb: torch.Tensor, alpha: torch.Tensor | None) -> torch.Tensor | None:
    """Check one image's shapes; return its alpha as a batch of one, (1, H, W), or None."""
    if rgb.dim() != 3 or rgb.shape[0] != 3:
        raise ValueError(f"rgb must be shaped (3, H, W), got {tuple(rgb.shape)}")
    if alpha is None:
        return None
    if alpha.shape not in (rgb.shape[1:], (1, *rgb.shape[1:])):
        raise ValueError(
            f"alpha must be shaped (H, W) or (1, H, W) = {tuple(rgb.shape[1:])}, got {tuple(alpha.shape)}"
        )
    return alpha.reshape(1, *rgb.shape[1:])


def dominant_palettes(
    rgb: torch.Tensor,
    n: int = 10,
    alpha: torch.Tensor | None = None,
    *,
    quality: int = 1,
    ignore_white: bool = False,
) -> torch.Tensor:
    """Batched `dominant_palette`: rgb (B, 3, H, W), alpha (B, H, W) or (B, 1, H, W) -> (B, n, 3)."""
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= _MAX_N:
        raise ValueError(f"n must be an integer in [1, {_MAX_N}], got {n!r}")
    pixels, alphas = _sampled(rgb, alpha, quality)
    hists = _histograms(pixels, None if alphas is None else alphas >= 0.5, ignore_white)
    out = np.empty((rgb.shape[0], n, 3), dtype=np.float64)
    for i, hist in enumerate(hists):
        colors = _palette_from_histogram(hist, n)
        if not colors:
            out[i] = 255.0  # nothing counted: white, the color transparent pixels are composited onto
            continue
        out[i] = [colors[j % len(colors)] for j in range(n)]
    return torch.from_numpy(out / 255.0).to(dtype=rgb.dtype, device=rgb.device)


def dominant_palette(
    rgb: torch.Tensor,
    n: int = 10,
    alpha: torch.Tensor | None = None,
    *,
    quality: int = 1,
    ignore_white: bool = False,
) -> torch.Tensor:
    """The n dominant colors (n, 3) in [0, 1] of an image rgb (3, H, W) in [0, 1], by Color Thief's MMCQ.

    Colors are ordered by population, most pixels first, and computed deterministically. Pixels with
    alpha < 0.5 (alpha shaped (H, W) or (1, H, W)) are not counted; `quality` samples every quality-th
    pixel, as in Color Thief. Near-white pixels (r, g and b all above 250 of 255) are counted unless
    `ignore_white`: Color Thief drops them, but in comics and sprites white is a real color of the
    character. There are always exactly n colors: when MMCQ finds fewer (a flat image, fewer distinct
    colors than n), the colors found are repeated in population order; when no pixel is counted (fully
    transparent), the palette is n times white, the color transparent pixels are composited onto.
    The output has rgb's dtype and device. See the module docstring for how n maps to Color Thief.
    """
    alpha = _single(rgb, alpha)
    return dominant_palettes(rgb[None], n, alpha, quality=quality, ignore_white=ignore_white)[0]


def colorthief_palette(
    rgb: torch.Tensor,
    color_count: int = 10,
    alpha: torch.Tensor | None = None,
    *,
    quality: int = 10,
    ignore_white: bool = True,
) -> list[tuple[int, int, int]]:
    """Exactly Color Thief's `get_palette(color_count, quality)` for rgb (3, H, W) in [0, 1], as 0..255 ints.

    Its quirks included: the number of colors returned (see the module docstring), the order (box
    population x volume), the centres of empty boxes as colors, and alpha counted from 125 of 255.
    Raises ValueError when no pixel is counted, where Color Thief raises a bare Exception.
    """
    alpha = _single(rgb, alpha)
    if isinstance(color_count, bool) or not isinstance(color_count, int) or not 2 <= color_count <= 256:
        raise ValueError(f"color_count must be an integer in [2, 256], got {color_count!r}")
    pixels, alphas = _sampled(rgb[None], alpha, quality)
    hist = next(_histograms(pixels, None if alphas is None else np.rint(alphas * 255) >= 125, ignore_white))
    if not hist.any():
        raise ValueError("colorthief_palette: no pixel left to count (all transparent or near-white)")
    return [_box_color(hist, box) for box in _mmcq_on_histogram(hist, color_count)]
