"""Looking into a trained memory: slot statistics, slot colors as swatches, and a contact sheet PNG that shows
every written slot with the image that wrote it, and what chosen query images retrieve (paper Fig. 8).
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from PIL import Image, ImageDraw, ImageFont

from memopainter.color import ab_bins
from memopainter.color.lab import lab_to_rgb_colors
from memopainter.core.model import MemoPainter
from memopainter.data.images import tensors_to_pil
from memopainter.inference.colorizer import Colorizer
from memopainter.inference.inputs import ImageLike, image_tensors
from memopainter.memory import ColorMemory

Font = ImageFont.ImageFont | ImageFont.FreeTypeFont

SWATCH_L = 65.0  # the memory stores no lightness: "dist" bins are shown at this mid-light L
DIST_SWATCH_BINS = 8  # heaviest bins shown per "dist" slot, widths in proportion to their mass
QUERY_TOP_K = 3  # slots shown per query, as in Fig. 8
CELL_W, SWATCH_H, LINE_H, PAD = 220, 24, 13, 6
COLUMNS = 4
THUMB = 2 * SWATCH_H + 2 * LINE_H  # side of a query's thumbnail


@dataclass(frozen=True)
class MemoryStats:
    """Slot count, how many were ever written, and the ages of the written ones."""

    size: int
    used: int
    feature: str
    age_min: int | None  # None when no slot is written
    age_median: float | None
    age_max: int | None


@dataclass(frozen=True)
class QueryResult:
    """The top slots a query image retrieves, best first."""

    name: str
    thumbnail: Image.Image  # what the backbone saw: the gray square
    slots: list[int]
    scores: list[float]


def memory_stats(model: MemoPainter) -> MemoryStats:
    """Statistics of `model`'s memory; ValueError for a model trained without one."""
    memory = _memory(model)
    ages = memory.ages[memory.filled].tolist()
    if not ages:
        return MemoryStats(memory.size, 0, memory.feature, None, None, None)
    return MemoryStats(memory.size, len(ages), memory.feature, min(ages), statistics.median(ages), max(ages))


def slot_source(model: MemoPainter, slot: int) -> str:
    """'path (class)' of the image that last wrote `slot`, or 'unknown source'."""
    _memory(model)
    path, name = model.slot_origin(slot)
    if path is None:
        return "unknown source"
    return path if name is None else f"{path} ({name})"


def slot_classes(model: MemoPainter) -> dict[str, int]:
    """Written slots per class of the image that wrote them, by class name ('none' for unlabelled)."""
    memory = _memory(model)
    counts: dict[str, int] = {}
    for slot in memory.filled.nonzero().flatten().tolist():
        name = model.source_class(int(memory.sources[slot])) or "none"
        counts[name] = counts.get(name, 0) + 1
    return counts


def slot_swatch(model: MemoPainter, slot: int) -> list[tuple[tuple[int, int, int], float]]:
    """The colors of a slot's value as (8-bit RGB, share of the strip): a palette or the heaviest ab bins."""
    memory = _memory(model)
    value = memory.values[slot].detach().float().cpu()
    if memory.feature == "rgb":
        colors = value.reshape(-1, 3)  # (10, 3)
        return [(_rgb8(c), 1.0 / len(colors)) for c in colors]
    mass, bins = value.topk(DIST_SWATCH_BINS)
    ab = ab_bins()[bins]  # (n, 2)
    lab = torch.cat([torch.full((len(bins), 1), SWATCH_L), ab], dim=1)  # (n, 3)
    colors = lab_to_rgb_colors(lab)  # (n, 3)
    share = mass / mass.sum().clamp(min=1e-12)
    return [(_rgb8(c), float(s)) for c, s in zip(colors, share, strict=True)]


def query_memory(
    colorizer: Colorizer, images: Sequence[ImageLike], names: Sequence[str]
) -> list[QueryResult]:
    """The top-3 slots (fewer if fewer are written) that each image retrieves, as colorize would."""
    memory = _memory(colorizer.model)
    k = min(QUERY_TOP_K, memory.num_filled)
    if k == 0:
        raise ValueError(f"{colorizer.path}: no memory slot is written yet; there is nothing to retrieve")
    results = []
    for image, name in zip(images, names, strict=True):
        prepared = colorizer.prepare(*image_tensors(image))
        scores, slots = memory.retrieve(colorizer.query_keys([prepared]), k)  # (1, k) each
        thumbnail = tensors_to_pil(prepared.backbone_rgb.cpu())
        results.append(QueryResult(name, thumbnail, slots[0].tolist(), scores[0].tolist()))
    return results


def contact_sheet(model: MemoPainter, title: str, queries: Sequence[QueryResult] = ()) -> Image.Image:
    """A PNG-ready sheet: the queries' top slots first (if any), then every written slot with its source."""
    memory = _memory(model)
    font = ImageFont.load_default()
    slots = memory.filled.nonzero().flatten().tolist()
    grid_rows = -(-len(slots) // COLUMNS)
    cell_h = SWATCH_H + 2 * LINE_H + PAD
    query_h = len(queries) * (THUMB + PAD)
    width = PAD + COLUMNS * (CELL_W + PAD)
    height = PAD + 2 * LINE_H + query_h + LINE_H + grid_rows * cell_h + PAD
    sheet = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(sheet)
    stats = memory_stats(model)
    draw.text((PAD, PAD), _fit(draw, title, width - 2 * PAD, font), fill="black", font=font)
    summary = f"{stats.used} of {stats.size} slots written, feature {stats.feature}"
    draw.text((PAD, PAD + LINE_H), summary, fill="black", font=font)
    y = PAD + 2 * LINE_H
    for query in queries:
        # The name goes under the thumbnail, which is one text line shorter than the row.
        side = THUMB - LINE_H
        sheet.paste(query.thumbnail.convert("RGB").resize((side, side)), (PAD + LINE_H // 2, y))
        draw.text((PAD, y + side), _fit(draw, query.name, THUMB, font), fill="black", font=font)
        for i, (slot, score) in enumerate(zip(query.slots, query.scores, strict=True)):
            x = 2 * PAD + THUMB + i * (CELL_W + PAD)
            _draw_slot(draw, model, slot, x, y, f"top-{i + 1}: slot {slot}  score {score:.3f}", font)
        y += THUMB + PAD
    draw.text((PAD, y), "written slots:", fill="black", font=font)
    y += LINE_H
    for n, slot in enumerate(slots):
        row, col = divmod(n, COLUMNS)
        x = PAD + col * (CELL_W + PAD)
        label = f"slot {slot}  age {int(memory.ages[slot])}"
        _draw_slot(draw, model, slot, x, y + row * cell_h, label, font)
    return sheet


def _draw_slot(
    draw: ImageDraw.ImageDraw, model: MemoPainter, slot: int, x: int, y: int, label: str, font: Font
) -> None:
    """One cell: the slot's swatch strip, a label line and its source line."""
    left = float(x)
    for color, share in slot_swatch(model, slot):
        right = left + share * CELL_W
        if round(right) > round(left):
            draw.rectangle([round(left), y, round(right) - 1, y + SWATCH_H - 1], fill=color)
        left = right
    draw.rectangle([x, y, x + CELL_W - 1, y + SWATCH_H - 1], outline="gray")
    draw.text((x, y + SWATCH_H + 1), _fit(draw, label, CELL_W, font), fill="black", font=font)
    source = _fit(draw, slot_source(model, slot), CELL_W, font)
    draw.text((x, y + SWATCH_H + 1 + LINE_H), source, fill="dimgray", font=font)


def _fit(draw: ImageDraw.ImageDraw, text: str, width: int, font: Font) -> str:
    """`text`, shortened from the left with '...' until it fits `width` pixels (paths keep their ends)."""
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength("..." + text, font=font) > width:
        text = text[1:]
    return "..." + text


def _rgb8(color: torch.Tensor) -> tuple[int, int, int]:
    """An sRGB color (3,) in [0, 1] as 8-bit integers."""
    r, g, b = (int(round(float(c) * 255)) for c in color.clamp(0.0, 1.0))
    return r, g, b


def _memory(model: MemoPainter) -> ColorMemory:
    """The model's memory, or a ValueError for the no-memory ablation."""
    if model.memory is None:
        raise ValueError("this model was trained without memory (--no-memory): there is no memory to inspect")
    return model.memory
