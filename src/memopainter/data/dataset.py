"""A folder of color images as training data: network tensors, color features and query features, cached.

DATA_DIR is searched recursively. When it has sub-folders, each top-level sub-folder is a class; labels are
only used by the supervised memory and by evaluation, never by the unsupervised model.

For line-art input (data.input "lineart") the generator and the query see each frame's line art, from a
parallel folder of drawn line art where it has the frame, else extracted from the frame's colors
(memopainter.data.lineart); the targets and the memory's values stay the colored frame's.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from memopainter.color import rgb_to_lab
from memopainter.color.features import color_feature
from memopainter.data.cache import FeatureCache, file_digest
from memopainter.data.descriptors import DEFAULT, LIGHTNESS_BINS, lightness_histogram, parse_descriptors
from memopainter.data.descriptors import query_features as data_query_features
from memopainter.data.images import ImageLoadError, list_images, load_image
from memopainter.data.lineart import EXTRACTION_VERSION, lineart_input
from memopainter.data.preprocess import backbone_input, network_input, resize_rgba

log = logging.getLogger(__name__)

COLOR_FEATURE_MAX_SIDE = 256  # color statistics of a shrunk copy: the same colors at a bounded cost
FEATURE_VERSION = 2  # bump when a feature's computation changes, so stale caches are not reused
BACKBONE_BATCH = 16


@dataclass(frozen=True)
class ImageRecord:
    """One training image: where it is, its class (top-level sub-folder) and its content hash."""

    path: Path
    class_name: str | None
    digest: str


@dataclass
class TrainingData:
    """Everything training needs, one row per image, computed once."""

    records: list[ImageRecord]
    class_names: list[str]  # sorted; empty for an unlabelled folder
    labels: torch.Tensor  # (N,) int64 index into class_names, -1 without a class
    gray: torch.Tensor  # (N, 1, S, S) the generator's input: L / 100 of the frame, or of its line art
    ab: torch.Tensor  # (N, 2, S, S) ab / 110
    color: torch.Tensor  # (N, value_dim) the memory value of each image
    query_features: torch.Tensor | None  # (N, D) the query head's input (data.descriptors), None without one
    lightness: torch.Tensor | None = None  # (N, 1, S, S) line-art input only: the frame's L / 100, a target

    def __len__(self) -> int:
        return len(self.records)


def scan_images(root: str | Path) -> list[ImageRecord]:
    """Every image under `root`, sorted, with its class (the top-level sub-folder, None at the top level)."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: not a folder of images")
    records = []
    for path in list_images(root, recursive=True):
        parts = path.relative_to(root).parts
        records.append(ImageRecord(path, parts[0] if len(parts) > 1 else None, file_digest(path)))
    return records


def load_training_data(
    root: str | Path,
    image_size: int,
    feature: str,
    backbone: torch.nn.Module | None = None,
    cache: FeatureCache | None = None,
    progress: Callable[[str], None] | None = None,
    on_unreadable: Callable[[ImageLoadError], None] | None = None,
    descriptors: str = DEFAULT,
    lightness_bins: int = LIGHTNESS_BINS,
    input_mode: str = "gray",
    lineart_dir: str | Path | None = None,
) -> TrainingData:
    """Read, resize and featurize every readable image under `root`.

    Unreadable files are skipped, each passed to `on_unreadable` (logged as a warning when it is None).
    The query features are the `descriptors` ("pooled+lightness", see data.descriptors) of each image, its
    lightness histogram in `lightness_bins` bins.
    With `input_mode` "lineart" the generator's input and the query features are those of each frame's
    line art: `lineart_dir`/<the frame's path under root> where that exists, else extracted.
    """
    cache = cache or FeatureCache()
    say = progress or log.info
    records, tensors = _read(root, on_unreadable)
    say(f"{len(records)} images in {root}")
    class_names = sorted({r.class_name for r in records if r.class_name is not None})
    index = {name: i for i, name in enumerate(class_names)}
    labels = torch.tensor([index.get(r.class_name, -1) for r in records], dtype=torch.int64)
    digests = [r.digest for r in records]

    gray, ab = zip(*(network_input(rgb, alpha, image_size) for rgb, alpha in tensors), strict=True)
    lightness, seen, seen_digests, seen_kind = None, tensors, digests, ""  # what the generator and query see
    if input_mode == "lineart":
        lightness = torch.stack(gray)
        seen, seen_digests = _line_art(Path(root), records, tensors, lineart_dir, say)
        seen_kind = f"lineart{EXTRACTION_VERSION}-"
        gray = [network_input(rgb, alpha, image_size)[0] for rgb, alpha in seen]

    def colors(indices: list[int]) -> torch.Tensor:
        say(f"computing {feature} color features of {len(indices)} images")
        return torch.stack([image_color_feature(*tensors[i], feature) for i in indices])

    color = cache.get(f"color-{feature}-v{FEATURE_VERSION}", digests, colors)
    query_features = None
    if backbone is not None:
        query_features = _query_features(
            backbone, seen, seen_digests, seen_kind, descriptors, lightness_bins, cache, say
        )
    return TrainingData(
        records, class_names, labels, torch.stack(gray), torch.stack(ab), color, query_features, lightness
    )


def _query_features(
    backbone: torch.nn.Module,
    seen: list[tuple[torch.Tensor, torch.Tensor | None]],
    digests: list[str],
    kind_prefix: str,
    descriptors: str,
    lightness_bins: int,
    cache: FeatureCache,
    say: Callable[[str], None],
) -> torch.Tensor:
    """The query's descriptors of the images the query sees (frames or their line art), each part cached
    under its own kind (`kind_prefix` tells line art from frames)."""

    def features(indices: list[int]) -> torch.Tensor:
        say(f"computing {backbone.name} features of {len(indices)} images (cached for later runs)")
        return backbone_features(backbone, [seen[i] for i in indices])

    weights = (backbone.weights_sha256 or "none")[:16]
    kind = f"{kind_prefix}backbone-{backbone.name}-{weights}-v{FEATURE_VERSION}"
    pooled = cache.get(kind, digests, features)  # (N, F)
    histograms = cache.get(
        f"{kind_prefix}lightness-{lightness_bins}-v{FEATURE_VERSION}",
        digests,
        lambda indices: torch.stack([image_lightness_histogram(*seen[i], lightness_bins) for i in indices]),
    )  # (N, lightness_bins)
    return data_query_features(pooled, histograms, parse_descriptors(descriptors))


def _read(
    root: str | Path, on_unreadable: Callable[[ImageLoadError], None] | None
) -> tuple[list[ImageRecord], list[tuple[torch.Tensor, torch.Tensor | None]]]:
    """The readable images under `root` and their (rgb, alpha); the others go to `on_unreadable`."""
    records, tensors = [], []
    for record in scan_images(root):
        try:
            tensors.append(load_image(record.path))
        except ImageLoadError as error:
            if on_unreadable is None:
                log.warning("skipped %s", error)
            else:
                on_unreadable(error)
            continue
        records.append(record)
    if not records:
        raise ValueError(f"{root}: no readable images found")
    return records, tensors


def _line_art(
    root: Path,
    records: list[ImageRecord],
    tensors: list[tuple[torch.Tensor, torch.Tensor | None]],
    lineart_dir: str | Path | None,
    say: Callable[[str], None],
) -> tuple[list[tuple[torch.Tensor, torch.Tensor | None]], list[str]]:
    """Each frame's line art on white with the alpha inference will see, and a cache digest for it.

    As Colorizer.prepare sees them: extracted lines keep the frame's alpha; drawn line art is opaque white
    paper (its own alpha is the ink's), so the query's lightness histogram counts the paper in training too.
    """
    if lineart_dir is not None and not Path(lineart_dir).is_dir():
        raise ValueError(f"{lineart_dir}: not a folder of line art (data.lineart)")
    seen, digests, drawn = [], [], 0
    for record, (rgb, alpha) in zip(records, tensors, strict=True):
        drawing = Path(lineart_dir) / record.path.relative_to(root) if lineart_dir else None
        if drawing is not None and drawing.is_file():
            lines, _ = lineart_input(*load_image(drawing))
            if lines.shape != rgb.shape:
                size = "x".join(map(str, lines.shape[:0:-1]))
                raise ValueError(f"{drawing}: line art of {size} px for {record.path} of a different size")
            digests.append(f"{record.digest}-drawn-on-paper-{file_digest(drawing)}")
            seen.append((lines, None))
            drawn += 1
        else:
            digests.append(f"{record.digest}-extracted")
            seen.append((lineart_input(rgb, alpha)[0], alpha))
    say(f"line art: {drawn} drawn (from {lineart_dir}), {len(records) - drawn} extracted from the colors")
    return seen, digests


@torch.no_grad()
def backbone_features(
    backbone: torch.nn.Module, images: list[tuple[torch.Tensor, torch.Tensor | None]]
) -> torch.Tensor:
    """Pooled backbone features (N, feature_dim) of images given as (rgb, alpha) pairs."""
    device = backbone.mean.device
    out = []
    for start in range(0, len(images), BACKBONE_BATCH):
        batch = [
            backbone_input(rgb, alpha, backbone.input_size)
            for rgb, alpha in images[start : start + BACKBONE_BATCH]
        ]
        out.append(backbone(torch.stack(batch).to(device)).cpu())
    return torch.cat(out)


def image_lightness_histogram(rgb: torch.Tensor, alpha: torch.Tensor | None, bins: int) -> torch.Tensor:
    """The lightness histogram (bins,) of one image (3, H, W) over its opaque pixels, as inference has it."""
    return lightness_histogram(rgb_to_lab(rgb)[0], alpha, bins)


def image_color_feature(rgb: torch.Tensor, alpha: torch.Tensor | None, feature: str) -> torch.Tensor:
    """The memory value of one image as training computes it: the color feature of a bounded-size copy."""
    return color_feature(*_shrink(rgb, alpha, COLOR_FEATURE_MAX_SIDE), feature)


def _shrink(
    rgb: torch.Tensor, alpha: torch.Tensor | None, max_side: int
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Downscale so the longer side is at most `max_side`, keeping the aspect ratio."""
    h, w = rgb.shape[-2:]
    scale = max_side / max(h, w)
    if scale >= 1:
        return rgb, alpha
    size = (max(1, round(h * scale)), max(1, round(w * scale)))
    if alpha is not None:
        return resize_rgba(rgb, alpha, size)
    small = F.interpolate(rgb[None], size=size, mode="bilinear", antialias=True, align_corners=False)[0]
    return small.clamp(0.0, 1.0), None
