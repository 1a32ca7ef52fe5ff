"""One-shot teaching without retraining: write colored reference images into a trained model's memory.

Each reference is queried as at test time, from its gray version (backbone, then query head), and its color
feature is computed as in training; the pair goes through the paper's memory update (eqs. 8, 9). So a
reference whose colors already match its top-1 slot refreshes that slot's key instead of taking a slot of its
own: that is the paper's rule, and `Remembered.action` says which happened.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from memopainter.core.model import MemoPainter
from memopainter.data.dataset import image_color_feature
from memopainter.inference.colorizer import Colorizer
from memopainter.inference.inputs import ImageLike, image_tensors

WROTE, REFRESHED = "wrote", "refreshed"


@dataclass(frozen=True)
class Remembered:
    """What the memory update did with one reference image."""

    source: str  # the name recorded for the image (its path, for the CLI)
    index: int  # its entry in the model's source_paths / source_classes
    slot: int
    action: str  # WROTE: a new slot; REFRESHED: its top-1 slot already held these colors, its key moved
    replaced: str | None  # for WROTE, the source of the slot's previous content (None: empty or unknown)


def remember(
    colorizer: Colorizer,
    images: Sequence[ImageLike],
    sources: Sequence[str] | None = None,
    class_name: str | None = None,
) -> list[Remembered]:
    """Write colored reference images into `colorizer`'s memory in place, one by one, by eqs. 8 and 9.

    Each image's source name (default "image <n>") is appended to the model's source_paths, with its class
    (`class_name`, added to class_names if new; -1 without one). A supervised memory matches by class, so
    it needs `class_name`. Save the result with `colorizer.model.save(path)`.
    """
    memo = colorizer.model
    if memo.memory is None:
        raise ValueError(f"{colorizer.path}: trained without memory (--no-memory); there is nothing to teach")
    if sources is not None and len(sources) != len(images):
        raise ValueError(f"got {len(images)} images but {len(sources)} source names")
    if memo.memory.supervised and class_name is None:
        raise ValueError(f"{colorizer.path}: its memory is supervised (matches by class); name the class")
    label = -1
    if class_name is not None:
        if class_name not in memo.class_names:
            memo.class_names.append(class_name)
        label = memo.class_names.index(class_name)
    device = colorizer.device
    results = []
    for i, image in enumerate(images):
        rgb, alpha = image_tensors(image)
        key = colorizer.query_keys([colorizer.prepare(rgb, alpha)])  # (1, key_dim)
        value = image_color_feature(rgb, alpha, colorizer.feature).to(device)[None]  # (1, value_dim)
        source = sources[i] if sources is not None else f"image {len(memo.source_paths)}"
        index = len(memo.source_paths)
        memo.source_paths.append(str(source))
        memo.source_classes.append(label)
        results.append(_update(memo, key, value, source, index, label))
    return results


@torch.no_grad()
def _update(
    memo: MemoPainter, key: torch.Tensor, value: torch.Tensor, source: str, index: int, label: int
) -> Remembered:
    """One memory update (eqs. 8, 9) for one reference, reporting the slot it wrote or refreshed."""
    memory = memo.memory
    top = int(memory.retrieve(key, 1)[1][0, 0]) if memory.num_filled else -1
    before = memory.sources.clone()
    filled_before = memory.filled.clone()
    labels = torch.tensor([label], device=key.device) if memory.supervised else None
    sources = torch.tensor([index], device=key.device)
    matched = bool(memory.update(key, value, sources=sources, labels=labels)[0])
    if matched:
        return Remembered(source, index, top, REFRESHED, None)
    slot = int((memory.sources == index).nonzero()[0, 0])
    previous = int(before[slot])
    known = bool(filled_before[slot]) and 0 <= previous < len(memo.source_paths)
    return Remembered(source, index, slot, WROTE, memo.source_paths[previous] if known else None)
