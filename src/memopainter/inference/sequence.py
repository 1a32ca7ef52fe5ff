"""Colorizing a sequence of frames: the frames of a shot share their memory slot where that is right.

Colorized frame by frame, each frame takes its own best slot, and consecutive frames of one character can
switch between slots of different colors: flicker. `smoothed_slots` chooses the slot of every frame at once,
as the best path (Viterbi) over each frame's CANDIDATES best slots: a frame costs -score (the cosine
similarity of the slot's key to its query), a step from one frame to the next costs SWITCH_COST x the
distance between the two slots' colors, |a - b|_1 / (|a|_1 + |b|_1) (total variation for ab
distributions), and nothing across a cut. A cut, the start of a new shot, is where consecutive frames' query
keys have a cosine similarity below CUT_SIMILARITY: there a new character may bring other colors for free.

Slots alone leave most of the flicker: the generator answers every new gray frame with slightly other colors
everywhere, on the pixels that did not change too. So, after the path, `colorize_smoothed` holds them: within
a shot (restarted at a cut and wherever the frame size changes) a pixel opaque in both frames whose input L
stays within HOLD_TOLERANCE of the L its color was made for keeps the previous frame's 8-bit color, each
top-k coloring from the same coloring of the frame before, with a palette as without one.

How the constants were chosen. Data: Wesnoth's unit animations in frame order, every frame not used to
train the 5-shot model (`data split /tmp/data/wesnoth --shots 5 --seed 0`, whose train/ is the model's):
84 animations, 580 frames, concatenated one after another as `experiment sequence` does. They were chosen on
the even-numbered animations alone (294 frames, 252 steps inside an animation) and then checked, unchanged,
on the odd-numbered ones (286 frames) and on Kenney's 3-shot split (13 walk cycles and card runs, 77 frames).
Per frame, every one of its 8 candidates was colorized and scored, so each setting's delta_e2000, flicker
(evaluation.flicker) and slot switches per 100 steps are exact, not estimated.

- Frame by frame on the tuning half: delta_e2000 14.724, flicker 4.470, 38.5 switches per 100 steps. Over
  all 580 frames, steps that keep their slot flicker 3.27 on average and steps that switch 6.21: were every
  switch as calm as a kept slot, flicker would fall by only 27%. The rest is the generator answering a
  changed gray frame, which no choice of slot removes.
- SWITCH_COST (cut at 0.55), flicker on the tuning half: 4.132 at 0.05, 3.991 at 0.1, 3.836 at 0.2, 3.799
  at 0.3, 3.770 at 0.5, 3.779 at 1, 3.746 at 2 (switches 28.6, 21.8, 16.7, 14.7, 12.7, 10.7, 9.1; delta_e2000
  -0.10 to -0.01 throughout). Chosen: the smallest cost within 1% of the least flicker, 0.5. Past that
  knee a higher cost buys under 1% less flicker and more weight to hold a slot across a missed cut: on
  Kenney, cost 2 gave delta_e2000 +0.59 and same-class top-1 0.53, where 0.5 gave -0.39 and 0.73.
- CUT_SIMILARITY: within the tuning half's animations the cosine similarity of consecutive query keys had
  a 1% quantile of 0.574 and a minimum of 0.514; at changes of character a median of 0.520. Chosen: the
  highest threshold of 0.45, 0.5, ... that cuts at most 1% of the steps inside animations: 0.55 cuts 0.4%
  of them (0.6: 2.4%) and 57% (13 of 23) of the changes of character. Results were the same from 0.45 to
  0.55 (at 0.6: flicker 3.786, delta_e2000 -0.06). A missed cut still lets the path switch, at one
  SWITCH_COST.
- Check, constants unchanged: the odd half, flicker 4.451 -> 3.750 (-15.7%), delta_e2000 +0.064, switches
  42.6 -> 13.1 per 100 steps; Kenney (its own 3-shot model), flicker 3.462 -> 2.655 (-23.3%), delta_e2000
  -0.386, switches 9.4 -> 3.1.
- The hold (`experiment sequence`, all 580 Wesnoth frames and Kenney's 77): flicker 4.46 -> 0.11 and 3.46 ->
  0.76 against frame by frame, delta_e2000 -0.05 and -0.41 (slots alone: -0.04 and -0.39). Largely by
  construction: the gray input is the truth's L, and 99.8% and 98.6% of the pixels flicker counts are pixels
  the hold copies. Over the rest (L moved by >= HOLD_TOLERANCE) flicker is what it was without the hold.
  HOLD_TOLERANCE decides little on sprites: of the consecutive pixel pairs opaque in both frames inside
  animations, |dL| was 0 for 40% (Wesnoth) and 81% (Kenney), in (0, 0.5) for 0.5% and 1.8%, in [0.5, 2) for
  2.3% and 2.9%. A missed cut lets a pixel of the same L at the same place keep the previous shot's color.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np
import torch
from PIL import Image

from memopainter.inference.fullres import PreparedImage
from memopainter.inference.inputs import ImageLike, image_tensors
from memopainter.inference.results import IMAGE_ERRORS, INPUT_ERRORS, Colored, Failed
from memopainter.memory.memory import ColorMemory

if TYPE_CHECKING:  # the Colorizer calls into this module; here it is only the type of an argument
    from memopainter.inference.colorizer import Colorizer

# Slots per frame the path may choose from: the frame's own class was among its top 8 for 86% of Wesnoth's
# and 99% of Kenney's frames (top 1: 69% and 74%); rarer candidates would rarely be worth their switch.
CANDIDATES = 8
# Cost of a switch between slots of wholly different colors, in cosine score: the knee of flicker against
# cost on the tuning half (see above). A run of frames leaves its neighbours' slot only when its own slots'
# scores, summed over the run, beat it by more than the switches cost.
SWITCH_COST = 0.5
# Consecutive keys less similar than this start a new shot: the highest threshold that cut at most 1% of the
# steps inside animations on the tuning half (0.4%), while it cut 57% of the changes of character.
CUT_SIMILARITY = 0.55
# Input L (CIE, 0-100) a held pixel may move from the frame its color was made for: a change of L alone by 0.5
# is at most 0.5 CIEDE2000, half the just noticeable difference (evaluation.flicker's STILL_TOLERANCE), so a
# held color's lightness is never visibly off its input's, and 8-bit noise in soft shading still counts.
HOLD_TOLERANCE = 0.5
OPAQUE = 128  # alpha (uint8) from which a pixel counts as opaque: 0.5, as evaluation.flicker counts it


@dataclass
class SlotPath:
    """The slots chosen for a sequence: per frame, the path's slot first, then its other best candidates."""

    slots: torch.Tensor  # (T, k) memory slots
    scores: torch.Tensor  # (T, k) cosine similarity of each slot's key to the frame's query
    cuts: torch.Tensor  # (T,) bool: the frame starts a shot (frame 0 always does)


def shot_cuts(keys: torch.Tensor, cut_similarity: float = CUT_SIMILARITY) -> torch.Tensor:
    """(T,) bool: frame t starts a new shot, its unit query key far from frame t - 1's; keys (T, D)."""
    similarity = (keys[1:] * keys[:-1]).sum(1)  # (T - 1,)
    first = torch.ones(1, dtype=torch.bool, device=keys.device)
    return torch.cat([first, similarity < cut_similarity])


def color_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """|a - b|_1 / (|a|_1 + |b|_1) over the last dim, broadcast: in [0, 1], total variation for
    distributions, and a scale-free L1 for palettes (whose values are colors in [0, 1])."""
    total = a.abs().sum(-1) + b.abs().sum(-1)
    return (a - b).abs().sum(-1) / total.clamp(min=1e-12)


def step_distances(values: torch.Tensor) -> torch.Tensor:
    """color_distance between every candidate of frame t and every candidate of frame t + 1.

    values (T, C, V) -> (T - 1, C, C); cdist's L1 never builds the (T - 1, C, C, V) differences.
    """
    l1 = torch.cdist(values[:-1].double(), values[1:].double(), p=1)  # (T - 1, C, C)
    norms = values.double().abs().sum(-1)  # (T, C)
    return l1 / (norms[:-1, :, None] + norms[1:, None, :]).clamp(min=1e-12)


def best_path(unary: torch.Tensor, transition: torch.Tensor) -> torch.Tensor:
    """The index (T,) per frame of least total cost: sum of unary[t, i_t] + transition[t - 1, i_t-1, i_t].

    unary (T, C), transition (T - 1, C, C). Ties go to the lower index (candidates come best first), and
    numpy's small-array steps keep the loop over frames cheap next to the networks.
    """
    unary_np = unary.detach().cpu().double().numpy()  # (T, C)
    steps = transition.detach().cpu().double().numpy()  # (T - 1, C, C)
    frames, count = unary_np.shape
    cost = unary_np[0].copy()  # (C,) cheapest path ending at each candidate of the current frame
    back = np.zeros((max(frames - 1, 0), count), dtype=np.int64)  # (T - 1, C) best predecessor
    columns = np.arange(count)
    for t in range(1, frames):
        total = cost[:, None] + steps[t - 1]  # (C previous, C current)
        back[t - 1] = total.argmin(0)  # argmin returns the first minimum: the better-scored predecessor
        cost = total[back[t - 1], columns] + unary_np[t]
    path = np.empty(frames, dtype=np.int64)
    path[-1] = int(cost.argmin())
    for t in range(frames - 1, 0, -1):
        path[t - 1] = back[t - 1, path[t]]
    return torch.from_numpy(path)


@torch.no_grad()
def smoothed_slots(
    memory: ColorMemory,
    keys: torch.Tensor,
    top_k: int = 1,
    switch_cost: float = SWITCH_COST,
    cut_similarity: float = CUT_SIMILARITY,
) -> SlotPath:
    """One slot per frame of unit query keys (T, D) chosen over the whole sequence, as the module says."""
    count = min(max(CANDIDATES, top_k), memory.num_filled)
    scores, slots = memory.retrieve(keys, count)  # (T, C) each, best first
    cuts = shot_cuts(keys, cut_similarity)  # (T,)
    transition = switch_cost * step_distances(memory.values[slots])  # (T - 1, C, C)
    transition[cuts[1:]] = 0.0  # a new shot may change character
    chosen = best_path(-scores, transition).to(slots.device)  # (T,)
    ranks = torch.arange(count, device=slots.device).expand(len(chosen), -1)  # (T, C)
    others = ranks[ranks != chosen[:, None]].view(len(chosen), count - 1)  # (T, C - 1) in score order
    order = torch.cat([chosen[:, None], others], 1)[:, :top_k]  # (T, k)
    return SlotPath(slots.gather(1, order), scores.gather(1, order), cuts)


def colorize_smoothed(
    colorizer: Colorizer,
    frames: Sequence[ImageLike],
    top_k: int,
    palette: torch.Tensor | None,
    upsample: str,
    batch_size: int,
    hold: bool = True,
) -> list[Colored]:
    """Colorizer.colorize_sequence with smoothing: keys of every frame, the path (without a palette) and the
    cuts, then the generator, then, with `hold`, each frame's still pixels held from the frame before.

    Each frame's PreparedImage (its full-size L and alpha) is kept from the first pass to the second; the
    results hold it anyway (Colored.prepared, as colorize_each's do), so the peak is the returned list's.
    Its backbone input, which can outweigh a small frame's L, is dropped as soon as the key is computed.
    With a palette the keys serve only to find the cuts: every frame is conditioned on the palette.
    """
    if not frames:
        return []
    prepared, keys = prepare_with_keys(colorizer, frames, batch_size)  # keys (T, D)
    path = smoothed_slots(colorizer.model.memory, keys, top_k) if palette is None else None
    cuts = shot_cuts(keys) if path is None else path.cuts  # (T,)
    results: list[Colored] = []
    anchor = None  # (H, W) per pixel, the input L of the frame its current color was made for
    for start in range(0, len(prepared), batch_size):
        batch = prepared[start : start + batch_size]
        if path is None:
            prediction = colorizer.predict(batch, palette=palette)  # one coloring per frame
        else:
            prediction = colorizer.predict(batch, slots=path.slots[start : start + batch_size])  # k each
        for index, frame in enumerate(batch, start=start):
            try:
                images = prediction.images(index - start, frame, upsample)
            except IMAGE_ERRORS as error:
                raise ValueError(f"frame {index}: {error}") from error
            if hold:
                before = results[-1] if results else None
                lightness = frame.lightness.numpy()  # (H, W), a view
                if before is None or bool(cuts[index]) or before.prepared.size != frame.size:
                    anchor = lightness  # a new shot, or a new canvas: nothing to hold
                else:
                    held = held_pixels(anchor, before.prepared, frame)  # (H, W)
                    images = hold_colors(before.images, images, held)
                    anchor = np.where(held, anchor, lightness)
            slots = scores = None
            if path is not None:
                slots, scores = path.slots[index].tolist(), path.scores[index].tolist()
            results.append(Colored(frames[index], frame, images, slots, scores))
    return results


def held_pixels(
    anchor: np.ndarray, before: PreparedImage, after: PreparedImage, tolerance: float = HOLD_TOLERANCE
) -> np.ndarray:
    """(H, W) bool: the pixels of frame `after` that keep frame `before`'s colors (frames of one size).

    Held: opaque (alpha >= 0.5) in both frames, and input L within `tolerance` of `anchor` (H, W), the L of
    the frame each pixel's color was made for. Measured against the anchor, not the frame before: a slow
    fade, each step under the tolerance, would otherwise carry one frame's color ever further from its L.
    In numpy, single-threaded: torch would split these few cheap passes over its threads, and on a busy
    machine each split can wait longer for a thread than the pass takes.
    """
    held = np.abs(after.lightness.numpy() - anchor) < tolerance  # (H, W)
    for alpha in (before.alpha, after.alpha):
        if alpha is not None:
            held &= alpha >= OPAQUE  # a transparent pixel's color was never seen
    return held


def hold_colors(before: list[Image.Image], after: list[Image.Image], held: np.ndarray) -> list[Image.Image]:
    """Each coloring of `after` with the held pixels' RGB copied from the same coloring of `before`.

    Copied as 8-bit RGB, so a still pixel stays exactly equal through the shot; each frame keeps its own
    alpha, and a held pixel's L stays within HOLD_TOLERANCE of its input's (plus any output's 8-bit rounding).
    """
    images = []
    for previous, current in zip(before, after, strict=True):
        pixels = np.array(current)  # (H, W, 3 or 4) uint8, a copy to write into
        pixels[held, :3] = np.asarray(previous)[held, :3]
        images.append(Image.fromarray(pixels, mode=current.mode))
    return images


def prepare_with_keys(
    colorizer: Colorizer, frames: Sequence[ImageLike], batch_size: int
) -> tuple[list[PreparedImage], torch.Tensor]:
    """Every frame prepared and its query key (T, D), batch by batch, failing at the first bad frame."""
    prepared: list[PreparedImage] = []
    keys = []
    for start in range(0, len(frames), batch_size):
        batch = []
        for index in range(start, min(start + batch_size, len(frames))):
            try:
                batch.append(colorizer.prepare(*image_tensors(frames[index])))
            except INPUT_ERRORS as error:
                raise ValueError(f"frame {index}: {error}") from error
        keys.append(colorizer.query_keys(batch))  # (B, D)
        prepared += [replace(p, backbone_rgb=None) for p in batch]
    return prepared, torch.cat(keys)


def all_or_nothing(items: Iterable[Colored | Failed]) -> list[Colored]:
    """colorize_each's results (in input order) as a list, or ValueError naming the frame (from 0) that fails.

    Each kept result drops its backbone input, as the smoothed path's do: the list holds every frame at
    once, and nothing reads that input again.
    """
    results = []
    for index, item in enumerate(items):
        if isinstance(item, Failed):
            raise ValueError(f"frame {index}: {item.error}") from item.error
        item.prepared = replace(item.prepared, backbone_rgb=None)
        results.append(item)
    return results
