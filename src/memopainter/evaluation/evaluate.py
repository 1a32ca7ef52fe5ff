"""Evaluation against ground truth: colorize every image of a test folder from its lightness, exactly as
`colorize` does, and score the result against the original (paper section 4; what is scored and how it is
averaged: evaluation.scores).

With `sequences`, the test images that form animations (`data.sequences.group_animations`: numbered frames
of one stem in one folder) are colorized as sequences (`Colorizer.colorize_sequence`, smoothed), the others
one by one as before; the summary adds `flicker` (evaluation.flicker, over every step inside an animation)
and `switches_per_100_frames` (top-1 slot changes per 100 such steps), and the JSON `per_sequence`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from functools import partial
from pathlib import Path

import torch

from memopainter.data.dataset import image_color_feature
from memopainter.data.images import ImageLoadError, list_images, load_image, pil_to_tensors, tensors_to_pil
from memopainter.data.sequences import group_animations
from memopainter.evaluation.flicker import pair_flicker, slot_switches
from memopainter.evaluation.lpips import LPIPS, lpips_status
from memopainter.evaluation.scores import (
    EvaluatedImages,
    Evaluation,
    Failure,
    ImageScore,
    SequenceScore,
    measure,
)
from memopainter.inference import Colored, Colorizer, Failed
from memopainter.inference.fullres import gray_preview
from memopainter.inference.results import IMAGE_ERRORS
from memopainter.inference.upsample import DEFAULT_UPSAMPLE


def list_test_images(test_dir: str | os.PathLike) -> list[Path]:
    """Every image file under `test_dir`, sorted; FileNotFoundError or ValueError when there is none."""
    test_dir = Path(test_dir)
    if not test_dir.exists():
        raise FileNotFoundError(f"{test_dir}: no such folder")
    if not test_dir.is_dir():
        raise NotADirectoryError(f"{test_dir}: not a folder")
    files = list_images(test_dir, recursive=True)
    if not files:
        raise ValueError(f"{test_dir}: holds no image files")
    return files


def evaluate(
    colorizer: Colorizer,
    test_dir: str | os.PathLike,
    top_k: int = 1,
    *,
    lpips_alexnet: str | os.PathLike | None = None,
    lpips_heads: str | os.PathLike | None = None,
    batch_size: int = 8,
    oracle: bool = False,
    upsample: str = DEFAULT_UPSAMPLE,
    sequences: bool = False,
    lineart_dir: str | os.PathLike | None = None,
    on_image: Callable[[int, ImageScore, EvaluatedImages], None] | None = None,
    on_failure: Callable[[Failure], None] | None = None,
    progress: Callable[[int], None] | None = None,
) -> Evaluation:
    """Colorize every image under `test_dir` from its lightness, as `colorize` does, and score it.

    Unreadable images (and ones without an opaque pixel) are skipped and listed in `failures`.
    `on_image(index, score, images)` receives each evaluated image, index into per_image, for a report;
    `on_failure` each failure as it happens; `progress` the number of files done, as they are done.
    LPIPS weights are looked up as `lpips_status` does, unless given as paths. With `oracle`, each image
    is conditioned on its own true color feature instead of a memory slot (top-1 only): what a perfect
    retrieval would give, and so how much of the error is retrieval's. With `sequences`, animations are
    colorized as sequences and scored for flicker too (see the module docstring). With `lineart_dir` (a
    line-art model), each test image found under the same relative path there is colorized from that
    drawing and scored against the test image; the others, as always, from their extracted lines.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    colorizer.check_request(top_k, None, upsample)
    if oracle and (not colorizer.has_memory or top_k != 1):
        raise ValueError(f"{colorizer.path}: oracle conditions need a model with memory and top_k 1")
    if oracle and sequences:
        raise ValueError("oracle conditions and sequences exclude each other: the oracle retrieves nothing")
    if lineart_dir is not None and not colorizer.lineart:
        raise ValueError(f"lineart_dir {lineart_dir}: {colorizer.path} was not trained on line art")
    test_dir = Path(test_dir)
    files = list_test_images(test_dir)
    animations = group_animations(files) if sequences else []
    in_animations = {path for animation in animations for path in animation}
    lpips_model, lpips_unavailable = lpips_status(lpips_alexnet, lpips_heads, colorizer.device)
    classes = [] if oracle else _model_classes(colorizer)  # nothing is retrieved, so no retrieval accuracy
    result = Evaluation(str(colorizer.path), str(test_dir), top_k, [], [], classes, lpips_unavailable)
    options = {"batch_size": batch_size, "upsample": upsample, "keep_input": True, "check": _has_opaque_pixel}
    singles = [path for path in files if path not in in_animations]
    colored = _colorize_singles(colorizer, singles, test_dir, top_k, oracle, lineart_dir, options)
    record = partial(_record, colorizer, result, test_dir, lpips_model, on_image, on_failure, progress)
    for item in colored:
        record(item)
    if sequences:
        result.sequences = []
        for animation in animations:
            drawn = None if lineart_dir is None else (test_dir, Path(lineart_dir))
            items = _colorize_animation(colorizer, animation, top_k, upsample, batch_size, drawn)
            scored = [item for item in items if record(item)]
            result.sequences.append(_sequence_score(scored, test_dir))
    return result


def _record(
    colorizer: Colorizer,
    result: Evaluation,
    test_dir: Path,
    lpips_model: LPIPS | None,
    on_image: Callable[[int, ImageScore, EvaluatedImages], None] | None,
    on_failure: Callable[[Failure], None] | None,
    progress: Callable[[int], None] | None,
    item: Colored | Failed,
) -> bool:
    """Score one colorized test image into `result`, or list it as failed; True when it was scored."""
    scored = False
    try:
        if isinstance(item, Failed):
            raise item.error
        score, images = _score(colorizer, item, test_dir, lpips_model, on_image is not None)
    except IMAGE_ERRORS as error:
        failure = Failure(_relative(item.source, test_dir), _problem(error))
        result.failures.append(failure)
        if on_failure is not None:
            on_failure(failure)
    else:
        result.per_image.append(score)
        if on_image is not None:
            on_image(len(result.per_image) - 1, score, images)
        scored = True
    if progress is not None:
        progress(1)
    return scored


def _colorize_singles(
    colorizer: Colorizer,
    singles: list[Path],
    test_dir: Path,
    top_k: int,
    oracle: bool,
    lineart_dir: str | os.PathLike | None,
    options: dict,
) -> Iterator[Colored | Failed]:
    """colorize_each over the test images that are not animations: each from its drawing where
    `lineart_dir` has one, the result set back to the test image; with `oracle`, on its own colors."""
    drawings = {} if lineart_dir is None else _drawn_truths(singles, test_dir, Path(lineart_dir))
    own_feature = None
    if oracle:
        own_feature = partial(_own_feature, feature=colorizer.feature, truths=drawings)
    by_truth = {truth: drawing for drawing, truth in drawings.items()}
    inputs = [by_truth.get(path, path) for path in singles]
    colored = colorizer.colorize_each(inputs, top_k, condition=own_feature, **options)
    return colored if not drawings else _against_truth(colored, singles)


def _drawing(path: Path, test_dir: Path, lineart_dir: Path) -> Path:
    """The drawn line art of a test image when `lineart_dir` has it, else the test image itself."""
    drawing = lineart_dir / path.relative_to(test_dir)
    return drawing if drawing.is_file() else path


def _against_truth(items: Iterable[Colored | Failed], truths: list[Path]) -> Iterator[Colored | Failed]:
    """colorize_each's results for drawings, each set back to its test image as source and truth; a
    failure of the drawing names the drawing, since the failure is listed under the test image."""
    for item, truth in zip(items, truths, strict=True):
        drawing, item.source = item.source, truth
        if drawing == truth:
            yield item
            continue
        if isinstance(item, Failed):
            yield Failed(truth, ValueError(f"its line art {drawing}: {_problem(item.error)}"))
            continue
        try:
            item.rgb, item.alpha = load_image(truth)
        except IMAGE_ERRORS as error:
            yield Failed(truth, error)
            continue
        if item.images[0].size != (item.rgb.shape[2], item.rgb.shape[1]):
            yield Failed(truth, ValueError(_size_problem(drawing, *item.images[0].size, item.rgb)))
            continue
        yield item


def _colorize_animation(
    colorizer: Colorizer,
    frames: list[Path],
    top_k: int,
    upsample: str,
    batch_size: int,
    drawn: tuple[Path, Path] | None = None,
) -> list[Colored | Failed]:
    """An animation's frames colorized as one sequence, inputs kept; frames that cannot be read drop out
    first, and when the sequence itself fails every frame fails with it. With `drawn` (test_dir,
    lineart_dir), a frame whose drawing is there is colorized from it and still scored against itself."""
    items: list[Colored | Failed] = []
    loaded = []
    for path in frames:
        try:
            rgb, alpha = load_image(path)
            _has_opaque_pixel(rgb, alpha)
            drawing = path if drawn is None else _drawing(path, *drawn)
            shown = (rgb, alpha) if drawing == path else _drawing_tensors(drawing, rgb)
            loaded.append((path, rgb, alpha, shown))
        except IMAGE_ERRORS as error:
            items.append(Failed(path, error))
    inputs = [shown for *_, shown in loaded]
    try:
        colored = colorizer.colorize_sequence(inputs, top_k, upsample=upsample, batch_size=batch_size)
    except ValueError as error:
        return items + [Failed(path, error) for path, *_ in loaded]
    for (path, rgb, alpha, _), item in zip(loaded, colored, strict=True):
        item.source, item.rgb, item.alpha = path, rgb, alpha
    return items + colored


def _drawing_tensors(drawing: Path, truth_rgb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """A frame's drawn line art, loaded; refused unless it has the frame's size."""
    try:
        rgb, alpha = load_image(drawing)
    except IMAGE_ERRORS as error:
        raise ValueError(f"its line art {drawing}: {_problem(error)}") from error
    if rgb.shape[1:] != truth_rgb.shape[1:]:
        raise ValueError(_size_problem(drawing, rgb.shape[2], rgb.shape[1], truth_rgb))
    return rgb, alpha


def _size_problem(drawing: Path, width: int, height: int, truth_rgb: torch.Tensor) -> str:
    image = f"{truth_rgb.shape[2]}x{truth_rgb.shape[1]}"
    return (
        f"its line art {drawing} is {width}x{height}, the image {image}; a drawing must have its frame's size"
    )


def _sequence_score(frames: list[Colored], test_dir: Path) -> SequenceScore:
    """Flicker per step and top-1 slot switches of an animation's scored frames, in frame order."""
    outputs = [pil_to_tensors(frame.images[0])[0] for frame in frames]
    steps = pair_flicker(outputs, [frame.rgb for frame in frames], [frame.alpha for frame in frames])
    switches = slot_switches([frame.slots[0] if frame.slots else None for frame in frames])
    return SequenceScore([_relative(frame.source, test_dir) for frame in frames], steps, switches)


def _score(
    colorizer: Colorizer, item: Colored, test_dir: Path, lpips_model: LPIPS | None, with_images: bool
) -> tuple[ImageScore, EvaluatedImages | None]:
    """One colorized test image scored against its truth, with the images a report shows when asked."""
    metrics = measure(item.rgb, item.alpha, [pil_to_tensors(c)[0] for c in item.images], lpips_model)
    where = _relative(item.source, test_dir), _class_of(item.source, test_dir)
    score = ImageScore(*where, metrics, item.slots, *_source(colorizer, item.slots))
    images = None
    if with_images:
        images = EvaluatedImages(
            gray_preview(item.prepared), item.images, tensors_to_pil(item.rgb, item.alpha)
        )
    return score, images


def _own_feature(
    source: object, rgb: torch.Tensor, alpha: torch.Tensor | None, feature: str, truths: dict[Path, Path]
) -> torch.Tensor:
    """An image's own color feature (V,), as training computes it: the oracle's condition. A drawing's is
    its test image's (`truths` maps drawings to them): the drawing itself is black on white."""
    if source in truths:
        rgb, alpha = load_image(truths[source])
    return image_color_feature(rgb, alpha, feature)


def _drawn_truths(files: list[Path], test_dir: Path, lineart_dir: Path) -> dict[Path, Path]:
    """Each drawing under `lineart_dir` that stands in for a test image, mapped to that image."""
    drawings = {_drawing(path, test_dir, lineart_dir): path for path in files}
    return {drawing: path for drawing, path in drawings.items() if drawing != path}


def _has_opaque_pixel(rgb: torch.Tensor, alpha: torch.Tensor | None) -> None:
    if alpha is not None and not bool((alpha >= 0.5).any()):
        raise ValueError("no opaque pixel (alpha >= 0.5): nothing to compare")


def _problem(error: BaseException) -> str:
    """The one-line problem of a failure; ImageLoadError's message repeats the path Failure already holds."""
    text = error.problem if isinstance(error, ImageLoadError) else " ".join(str(error).split())
    return text or type(error).__name__


def _model_classes(colorizer: Colorizer) -> list[str]:
    """The model's class names when its memory slots can be traced to classed training images, else []."""
    memo = colorizer.model
    if memo.memory is None or not any(label >= 0 for label in memo.source_classes):
        return []
    return list(memo.class_names)


def _source(colorizer: Colorizer, slots: list[int] | None) -> tuple[str | None, str | None]:
    """(class, path) of the image that wrote the top-1 slot; None for what is unknown."""
    if not slots or colorizer.model.memory is None:
        return None, None
    path, name = colorizer.model.slot_origin(slots[0])
    return name, path


def _relative(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


def _class_of(path: Path, root: Path) -> str | None:
    """The top-level sub-folder of `root` that holds `path`, as training labels its images."""
    parts = path.relative_to(root).parts
    return parts[0] if len(parts) > 1 else None
