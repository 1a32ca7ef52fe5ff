"""Flicker of a colorized sequence: color that changes from frame to frame where the truth holds still.

- `pair_flicker`: for each pair of consecutive frames, the mean CIEDE2000 between the two outputs over the
  pixels whose ground truth does not change between them (truth CIEDE2000 below STILL_TOLERANCE) and that
  are opaque (alpha >= 0.5) in both; None for a pair of frames of different sizes or without such pixels.
- `flicker`: the mean of the defined pairs, so a still pixel's color counts however many frames it stays.
- `min_lightness_change` (both): count only the still pixels whose truth L changed by at least that much. The
  colorizer sees only L, and colorize_sequence's hold copies the colors of the pixels whose L holds still
  (inference.sequence.HOLD_TOLERANCE): with min_lightness_change=HOLD_TOLERANCE, flicker is measured where
  the hold cannot reach, "unheld flicker", the part of the still pixels that the hold does not zero by
  construction.
- `switches_per_100`: how often the memory slot behind the top-1 coloring changes, per 100 frame steps.

Images are sRGB (3, H, W) in [0, 1], as in evaluation.metrics; arithmetic in float64.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from memopainter.color import ciede2000, rgb_to_lab
from memopainter.evaluation.metrics import check_rgb_pair

# CIEDE2000 under which a truth pixel counts as unchanged between two frames: about one just noticeable
# difference, so 8-bit rounding and re-encoding noise count as still, and any drawn change does not.
STILL_TOLERANCE = 1.0


def pair_flicker(
    outputs: Sequence[torch.Tensor],
    truths: Sequence[torch.Tensor],
    alphas: Sequence[torch.Tensor | None],
    min_lightness_change: float = 0.0,
) -> list[float | None]:
    """Per consecutive pair (T - 1 values): mean CIEDE2000 between the outputs where the truth is still."""
    if not len(outputs) == len(truths) == len(alphas):
        raise ValueError(f"{len(outputs)} outputs, {len(truths)} truths and {len(alphas)} alphas differ")
    for output, truth in zip(outputs, truths, strict=True):
        check_rgb_pair(output, truth)
    masks = still_pixels(truths, alphas, min_lightness_change)  # bool, small next to the frames' Lab
    values: list[float | None] = []
    before = _lab(outputs[0]) if outputs else None  # (H, W, 3): two frames' Lab at a time
    for output, still in zip(outputs[1:], masks, strict=True):
        after = _lab(output)
        found = still is not None and bool(still.any())
        values.append(float(ciede2000(before[still], after[still]).mean()) if found else None)
        before = after
    return values


def flicker(
    outputs: Sequence[torch.Tensor],
    truths: Sequence[torch.Tensor],
    alphas: Sequence[torch.Tensor | None],
    min_lightness_change: float = 0.0,
) -> float | None:
    """Mean of `pair_flicker` over the pairs where it is defined; None where it is nowhere (or T < 2)."""
    return mean_defined(pair_flicker(outputs, truths, alphas, min_lightness_change))


def still_pixels(
    truths: Sequence[torch.Tensor], alphas: Sequence[torch.Tensor | None], min_lightness_change: float = 0.0
) -> list[torch.Tensor | None]:
    """Per consecutive pair (T - 1): (H, W) bool of the pixels `pair_flicker` compares, None across sizes.

    Still (truth CIEDE2000 < STILL_TOLERANCE), opaque in both frames, and truth L changed by at least
    `min_lightness_change` (0: every still pixel).
    """
    if len(truths) != len(alphas):
        raise ValueError(f"{len(truths)} truths and {len(alphas)} alphas differ")
    masks: list[torch.Tensor | None] = []
    previous = None
    for truth, alpha in zip(truths, alphas, strict=True):
        current = (_lab(truth), _opaque(alpha, *truth.shape[1:]))
        if previous is not None:
            masks.append(_still(previous, current, min_lightness_change))
        previous = current
    return masks


def slot_switches(slots: Sequence[int | None]) -> int:
    """Number of frames t >= 1 whose slot differs from frame t - 1's."""
    return sum(a != b for a, b in zip(slots[:-1], slots[1:], strict=True))


def switches_per_100(slots: Sequence[int | None]) -> float | None:
    """Slot switches per 100 frame steps, 100 x switches / (T - 1); None for fewer than 2 frames."""
    if len(slots) < 2:
        return None
    return 100.0 * slot_switches(slots) / (len(slots) - 1)


def mean_defined(values: Sequence[float | None]) -> float | None:
    """The mean of the values that are not None; None when none is."""
    defined = [v for v in values if v is not None]
    return math.fsum(defined) / len(defined) if defined else None


def _lab(rgb: torch.Tensor) -> torch.Tensor:
    """(H, W, 3) Lab in float64 of an sRGB (3, H, W) image."""
    return rgb_to_lab(rgb.detach().cpu().double()).permute(1, 2, 0)


def _opaque(alpha: torch.Tensor | None, height: int, width: int) -> torch.Tensor | None:
    """(H, W) bool of the opaque pixels (alpha >= 0.5), None for an opaque image; none opaque is allowed."""
    if alpha is None:
        return None
    if tuple(alpha.shape) != (height, width):
        raise ValueError(f"alpha must be shaped ({height}, {width}), got {tuple(alpha.shape)}")
    return (alpha if alpha.dtype == torch.bool else alpha >= 0.5).cpu()


def _still(previous: tuple, current: tuple, min_lightness_change: float) -> torch.Tensor | None:
    """(H, W) bool: two frames' still, opaque pixels whose L changed by at least min_lightness_change."""
    (truth_a, opaque_a), (truth_b, opaque_b) = previous, current
    if truth_a.shape != truth_b.shape:
        return None
    still = ciede2000(truth_a, truth_b) < STILL_TOLERANCE  # (H, W)
    if min_lightness_change > 0:
        still &= (truth_a[..., 0] - truth_b[..., 0]).abs() >= min_lightness_change
    for opaque in (opaque_a, opaque_b):
        if opaque is not None:
            still &= opaque
    return still
