"""Line art: black lines on white paper, as gray sRGB (3, H, W) in [0, 1] with three equal channels.

A few-shot colorizer that takes line art needs the same kind of input from its colored training images, so
extract_lineart draws lines from a color image the way an inker would: a line wherever the color steps
between neighbouring pixels, solid black where the art is nearly black already. Each neighbour step in
CIE Lab (and in alpha: the silhouette against transparent paper) gives its line to one pixel only, the
darker (or the more opaque) of the two, so a boundary between two flat fills becomes a line one pixel wide
and every flat fill becomes a white region enclosed by lines (4-neighbour regions cannot cross them).
Steps between two thresholds give gray, so antialiased and faint boundaries stay soft rather than jagged.
Lab rather than L alone: fills of one lightness but different hue are still separate regions to an inker.
Steps are taken after two passes of a 3 x 3 median over Lab, which remove one-pixel texture (the dithering
and specks of shaded pixel art, where nearly every pixel differs from its neighbours) and leave the steps
between fills where they are; alpha, and the near-black test, read the image as it is, so a one-pixel
spear or outline keeps its line.

is_lineart tells line art already (nearly no color, nearly only paper and ink, the ink black) from anything
else, judging the opaque pixels on white: black strokes on transparent paper are line art whatever color is
stored under alpha 0. lineart_input turns either into the line art the colorizer sees.

Big images are processed in bands of rows, with float32 temporaries, so a 4096 x 4096 image needs a few
hundred megabytes besides its input and output.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

import torch

from memopainter.color import rgb_to_gray, rgb_to_lab
from memopainter.data.images import composite_on_white

# Part of the cache key of features computed from extracted line art (data.dataset): raise it whenever
# extract_lineart, is_lineart or their constants change what they return.
EXTRACTION_VERSION = 2

# Hard-coded, not options.
EDGE_LOW = 4.0  # Lab steps below this are 8-bit rounding and texture noise inside one fill: no line
EDGE_HIGH = 16.0  # above this a boundary an inker draws in full; the faint steps of flat shading stay gray
ALPHA_STEP = 100.0  # opaque against transparent counts like black against white: always a full line
BLACK_FULL = 10.0  # L below this is ink already (outlines, spot blacks): kept solid black
BLACK_NONE = 20.0  # above this a dark fill (a dark gray tank, a beret), white inside its lines
# Median ink share of the opaque pixels of 24 Wesnoth units: 0.72 with no pass, 0.71 one, 0.64 two, 0.62 three
# (Kenney's flat sprites: 0.19 to 0.20 throughout). Two: most of the gain, and each pass costs.
MEDIAN_PASSES = 2
ROWS_PER_BAND = 256  # about 1 M pixels a band at 4096 wide: temporaries of tens of megabytes

# is_lineart, measured on 200 images each of OpenMoji's line art (black strokes on transparent paper) against
# Kenney sprites, Wesnoth units, OpenMoji color and the gray versions of all three. Line art: colored share 0
# (pure black strokes), mid-tone share 1.7% to 4.0% (antialiasing), black share of its ink 94% or more.
# Not line art: colored share 5% or more (Kenney's red-pip cards; OpenMoji color 6%), mid-tone share 14% or
# more (gray OpenMoji; Wesnoth, also gray, 25%) or ink that is dark gray, not black (Kenney's dark tank
# barrels, gray: 0%). Kenney's clubs and spades cards (black ink on white, a light gray border) sit at the
# mid-tone limit (5.5% to 8.1%) and mostly pass: black-and-white art either way.
INK_L = 30.0  # darker than this is ink (the core of antialiased strokes included)
BLACK_L = 15.0  # and darker than this black ink
PAPER_L = 90.0  # lighter than this is paper (light gray paper included)
INK_CHROMA = 8.0  # more colorful than this is color; neutral ink and antialiasing stay near 0
MAX_COLORED_SHARE = 0.02  # 2.5 times below the least colored image measured
MAX_MID_SHARE = 0.08  # twice the line art's most; a third of Wesnoth's least, 1.75 times below gray OpenMoji
MIN_BLACK_SHARE = 0.25  # of the ink: far below line art's 94%, far above a dark gray silhouette's 0%


def extract_lineart(rgb: torch.Tensor, alpha: torch.Tensor | None) -> torch.Tensor:
    """rgb (3, H, W) in [0, 1], alpha (H, W) in [0, 1] or None -> black line art on white (3, H, W)."""
    _check(rgb, alpha)
    _, h, w = rgb.shape
    lines = torch.empty(3, h, w, dtype=torch.float32)
    context = MEDIAN_PASSES + 1  # rows each side: one per median pass, one for the vertical steps
    for r0, r1 in _bands(h):
        top, bottom = max(r0 - context, 0), min(r1 + context, h)
        band_alpha = None if alpha is None else alpha[top:bottom].to(torch.float32)
        darkness = _darkness(rgb[:, top:bottom].to(torch.float32), band_alpha)  # (rows, W)
        lines[0, r0:r1] = 1.0 - darkness[r0 - top : r1 - top]
    lines[1:] = lines[0]
    return lines


def is_lineart(rgb: torch.Tensor, alpha: torch.Tensor | None) -> bool:
    """True when the image already is line art: nearly no color, its opaque pixels (alpha >= 0.5, all of them
    when alpha is None) composited on white nearly all paper or ink, and its ink mostly black."""
    counts = _ink_counts(rgb, alpha)
    if counts.judged == 0:  # nothing opaque: blank paper
        return True
    return (
        counts.colored <= MAX_COLORED_SHARE * counts.judged
        and counts.mid <= MAX_MID_SHARE * counts.judged
        and counts.black >= MIN_BLACK_SHARE * counts.ink
    )


def lineart_input(rgb: torch.Tensor, alpha: torch.Tensor | None) -> tuple[torch.Tensor, bool]:
    """(lines on white (3, H, W), extracted): line art as it is, on white and neutral gray (extracted False),
    anything else through extract_lineart (extracted True)."""
    if is_lineart(rgb, alpha):
        return _gray_on_white(rgb, alpha), False
    return extract_lineart(rgb, alpha), True


def _gray_on_white(rgb: torch.Tensor, alpha: torch.Tensor | None) -> torch.Tensor:
    """rgb (3, H, W) composited on white, as the gray sRGB of its lightness (3, H, W)."""
    gray = torch.empty(rgb.shape, dtype=torch.float32)
    for r0, r1 in _bands(rgb.shape[1]):
        band_alpha = None if alpha is None else alpha[r0:r1].to(torch.float32)
        neutral = rgb_to_gray(composite_on_white(rgb[:, r0:r1].to(torch.float32), band_alpha))  # (3, rows, W)
        gray[:, r0:r1] = neutral.mean(0)  # exactly equal channels: lab_to_rgb leaves float noise between them
    return gray.clamp_(0.0, 1.0)


def _darkness(rgb: torch.Tensor, alpha: torch.Tensor | None) -> torch.Tensor:
    """Ink (rows, W) in [0, 1] of a band rgb (3, rows, W): owned neighbour steps plus near-black pixels."""
    lab = rgb_to_lab(composite_on_white(rgb, alpha))  # (3, rows, W)
    blacks = ((BLACK_NONE - lab[0]) / (BLACK_NONE - BLACK_FULL)).clamp(0.0, 1.0)
    for _ in range(MEDIAN_PASSES):
        lab = _median3(lab)
    lightness = lab[0]
    key = lightness if alpha is None else lightness - ALPHA_STEP * alpha  # lower key owns the step
    features = lab if alpha is None else torch.cat([lab, ALPHA_STEP * alpha[None]])  # (C, rows, W)
    squared = torch.zeros_like(lightness)  # (rows, W) the largest squared step each pixel owns
    for dim in (1, 2):
        _own_steps(squared, features, key, dim)
    lines = ((squared.sqrt_() - EDGE_LOW) / (EDGE_HIGH - EDGE_LOW)).clamp(0.0, 1.0)
    return torch.maximum(lines, blacks)


def _median3(x: torch.Tensor) -> torch.Tensor:
    """The 3 x 3 median of each channel of x (C, rows, W), edges replicated."""
    rows, w = x.shape[1:]
    padded = torch.nn.functional.pad(x[None], (1, 1, 1, 1), mode="replicate")[0]
    p = [padded[:, dy : dy + rows, dx : dx + w] for dy in range(3) for dx in range(3)]  # 9 views like x
    # Paeth's 19 compare-exchanges leave the median of nine in p[4]; torch.median over a window dimension
    # sorts, and made the whole extraction some 4 times slower.
    for i, j in MEDIAN9_NETWORK:
        p[i], p[j] = torch.minimum(p[i], p[j]), torch.maximum(p[i], p[j])
    return p[4]


def _own_steps(squared: torch.Tensor, features: torch.Tensor, key: torch.Tensor, dim: int) -> None:
    """Raise `squared` (rows, W) to each neighbour pair's squared distance along dim (1 rows, 2 columns of
    features) at the pixel of the pair with the lower key; ties go to the first (upper or left) pixel."""
    n = features.shape[dim]
    if n < 2:
        return
    # Squares summed by hand: torch.linalg.vector_norm over dim 0 is some 20 times slower here.
    step = features.narrow(dim, 1, n - 1) - features.narrow(dim, 0, n - 1)
    distance = step.square_().sum(0)  # (rows - 1, W) or (rows, W - 1)
    first_owns = key.narrow(dim - 1, 0, n - 1) <= key.narrow(dim - 1, 1, n - 1)  # like distance
    head, tail = squared.narrow(dim - 1, 0, n - 1), squared.narrow(dim - 1, 1, n - 1)  # views
    torch.maximum(head, torch.where(first_owns, distance, 0.0), out=head)
    torch.maximum(tail, torch.where(first_owns, 0.0, distance), out=tail)


MEDIAN9_NETWORK = (
    (1, 2), (4, 5), (7, 8), (0, 1), (3, 4), (6, 7), (1, 2), (4, 5), (7, 8), (0, 3),
    (5, 8), (4, 7), (3, 6), (1, 4), (2, 5), (4, 7), (4, 2), (6, 4), (4, 2),
)  # fmt: skip


class _Counts(NamedTuple):
    judged: int  # opaque pixels
    colored: int  # of them, more colorful than INK_CHROMA
    mid: int  # neither ink nor paper
    ink: int  # darker than INK_L
    black: int  # darker than BLACK_L


def _ink_counts(rgb: torch.Tensor, alpha: torch.Tensor | None) -> _Counts:
    """Pixel counts over the opaque pixels composited on white."""
    _check(rgb, alpha)
    counts = torch.zeros(5, dtype=torch.int64)
    for r0, r1 in _bands(rgb.shape[1]):
        band_alpha = None if alpha is None else alpha[r0:r1].to(torch.float32)
        lab = rgb_to_lab(composite_on_white(rgb[:, r0:r1].to(torch.float32), band_alpha))  # (3, rows, W)
        lightness = lab[0]
        opaque = torch.ones_like(lightness, dtype=torch.bool) if band_alpha is None else band_alpha >= 0.5
        colored = lab[1].square() + lab[2].square() > INK_CHROMA**2
        mid = (lightness >= INK_L) & (lightness < PAPER_L)
        kinds = torch.stack([opaque, colored, mid, lightness < INK_L, lightness < BLACK_L])  # (5, rows, W)
        counts += (kinds & opaque).sum((1, 2))
    return _Counts(*counts.tolist())


def _bands(h: int) -> Iterator[tuple[int, int]]:
    for r0 in range(0, h, ROWS_PER_BAND):
        yield r0, min(r0 + ROWS_PER_BAND, h)


def _check(rgb: torch.Tensor, alpha: torch.Tensor | None) -> None:
    if rgb.dim() != 3 or rgb.shape[0] != 3:
        raise ValueError(f"rgb must be shaped (3, H, W), got {tuple(rgb.shape)}")
    if alpha is not None and alpha.shape != rgb.shape[1:]:
        raise ValueError(
            f"alpha must be shaped {tuple(rgb.shape[1:])} to match rgb, got {tuple(alpha.shape)}"
        )
