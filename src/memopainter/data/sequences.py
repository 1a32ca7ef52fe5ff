"""Image sequences: frames in their natural order, the animations inside a folder of sprites, animated files.

Frame folders sort naturally (frame2 before frame10). Sprite sets name an animation's frames by a common
stem and a frame number (`thunderer-ne-bob3.png`, `malePerson_walk5.png`): `group_animations` gathers them
back into ordered sequences, one per animation of one class folder.

Animated GIF, WebP and PNG (APNG) files load as an `Animation`: every frame on the full canvas as players
show it, with each frame's duration, the loop count and the format; `save_animations` writes colorings of
those frames back in the same format, timing and loop count.
"""

from __future__ import annotations

import io
import os
import re
import warnings
from collections.abc import Iterable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image, ImageOps

from memopainter.data.images import (
    DECODE_ERRORS,
    DEFAULT_MAX_PIXELS,
    ImageLoadError,
    aspect_problem,
    check_image_file,
    decode_errors,
    pil_to_tensors,
)
from memopainter.files import atomic_write

# Pillow's format name of each animated format, and the extension its outputs get (APNG is Pillow's "PNG").
ANIMATION_FORMATS = {"GIF": ".gif", "WEBP": ".webp", "PNG": ".png"}
# The pixel cap bounds an animation's memory; this bounds the per-frame overhead of very many tiny frames.
MAX_FRAMES = 10_000
# GIF frames are palette images: up to 255 colors for the opaque pixels, this index for the transparent ones.
_GIF_TRANSPARENT = 255

_NUMBERS = re.compile(r"(\d+)")
_FRAME_NUMBER = re.compile(r"^(?P<stem>.*?)[-_ ]?(?P<number>\d+)$")


def natural_key(name: str) -> tuple:
    """Sort key of a file name with its digit runs compared as numbers: frame2 before frame10."""
    return tuple(int(part) if part.isdigit() else part.lower() for part in _NUMBERS.split(name))


def animation_name(path: Path) -> tuple[str, int] | None:
    """(animation stem, frame number) of a numbered frame file, or None for a file without a frame number."""
    match = _FRAME_NUMBER.match(path.stem)
    if match is None or not match.group("stem"):
        return None
    return match.group("stem"), int(match.group("number"))


def group_animations(paths: Iterable[Path], min_frames: int = 3) -> list[list[Path]]:
    """The animations among `paths`: numbered frames of one stem in one folder, in frame order.

    Animations with fewer than `min_frames` frames, and files without a frame number, are left out. The
    result is sorted by folder, then stem, so that sequences of one class follow each other.
    """
    groups: dict[tuple[str, str], list[tuple[int, Path]]] = {}
    for path in paths:
        named = animation_name(path)
        if named is not None:
            groups.setdefault((str(path.parent), named[0]), []).append((named[1], path))
    return [
        [path for _, path in sorted(frames)]
        for _, frames in sorted(groups.items(), key=lambda item: (item[0][0], natural_key(item[0][1])))
        if len(frames) >= min_frames
    ]


@dataclass
class Animation:
    """The frames of an animated file and how they play."""

    frames: list[tuple[torch.Tensor, torch.Tensor | None]]  # per frame rgb (3, H, W), alpha (H, W) or None
    durations: list[int]  # milliseconds each frame shows
    loop: int | None  # as the file says (0: forever); None: it says nothing, and a GIF then plays once
    format: str  # Pillow's name: "GIF", "WEBP" or "PNG" (APNG)
    # An APNG's first frame may be a poster that viewers without APNG show and that never plays: kept so.
    default_image: bool = False

    @property
    def suffix(self) -> str:
        """The file extension of this format: ".gif", ".webp" or ".png"."""
        return ANIMATION_FORMATS[self.format]


def animation_format(path: str | os.PathLike[str]) -> str | None:
    """The format of an animated file of 2 frames or more ("GIF", "WEBP" or "PNG"), from its header; or None.

    None too for a file that cannot be opened: loading it as a still image then says what is wrong.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path, formats=tuple(ANIMATION_FORMATS)) as img:
                try:
                    animated = getattr(img, "is_animated", False)
                except DECODE_ERRORS:
                    animated = True  # a GIF damaged past its first frame: loading it names the frame
                return img.format if animated else None
    except (Image.UnidentifiedImageError, Image.DecompressionBombError, *DECODE_ERRORS):
        return None


def is_animated(path: str | os.PathLike[str]) -> bool:
    """Whether `path` is an animated GIF, WebP or PNG (APNG), from its header; no frame is decoded."""
    return animation_format(path) is not None


def load_animation(
    path: str | os.PathLike[str], *, max_pixels: int = DEFAULT_MAX_PIXELS, max_frames: int = MAX_FRAMES
) -> Animation:
    """Every frame of a GIF, WebP or PNG (APNG) file, each as `load_image` returns an image.

    Frames come composed onto the full canvas, as players show them (EXIF orientation applied). When any
    frame has transparency every frame gets an alpha, opaque where it had none, so that all save alike.
    `max_pixels` caps the pixels of all frames together (frames x canvas, checked from the header before a
    frame is decoded): an animation may take no more memory than one still image of that many pixels.
    `max_frames` caps the frames (each costs a network pass however small it is).
    A frame that fails is one ImageLoadError "<path>: frame N: <problem>", frames counted from 0 (as
    Pillow's seek and `Colorizer.colorize_sequence` count them).
    """
    path = check_image_file(path, max_pixels)
    formats = tuple(ANIMATION_FORMATS)
    with decode_errors(path, formats=formats), warnings.catch_warnings():
        # The cap over all frames is the authority on size; Pillow's hard limit still raises.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        with Image.open(path, formats=formats) as img:
            count = _frame_count(path, img, max_pixels, max_frames)
        # A fresh decoder: a damaged GIF whose count failed is left half-way through its frames.
        with Image.open(path, formats=formats) as img:
            loop, kind, poster = img.info.get("loop"), img.format, bool(img.info.get("default_image"))
            frames, durations = _decode_frames(path, img, count, max_pixels, max_frames)
    return Animation(_alike(frames), durations, loop, kind, poster and kind == "PNG")


def _frame_count(path: Path, img: Image.Image, max_pixels: int, max_frames: int) -> int | None:
    """How many frames an opened animation has, once they fit the caps on frames, pixels and shape.

    None when a damaged GIF cannot be walked to its end without decoding: its frames are then counted as
    they decode, under the same caps, so that the error names the frame that broke.
    """
    width, height = img.size
    problem = aspect_problem(height, width)
    if problem is not None:
        raise ImageLoadError(path, problem)
    try:
        count = getattr(img, "n_frames", 1)
    except DECODE_ERRORS:
        return None
    if count > max_frames:
        raise ImageLoadError(path, f"too many frames ({count} > {max_frames})")
    if count * width * height > max_pixels:
        pixels = f"{count} frames of {width}x{height} = {count * width * height}"
        raise ImageLoadError(path, f"too many pixels ({pixels} > max_pixels {max_pixels})")
    return count


def _decode_frames(
    path: Path, img: Image.Image, count: int | None, max_pixels: int, max_frames: int
) -> tuple[list[tuple[torch.Tensor, torch.Tensor | None]], list[int]]:
    """The first `count` frames (all of them when None) as (rgb, alpha) tensors, and their durations."""
    frames: list[tuple[torch.Tensor, torch.Tensor | None]] = []
    durations: list[int] = []
    total = 0
    for index in range(count) if count is not None else range(max_frames + 1):
        where = f"frame {index}: "
        with decode_errors(path, where):
            try:
                img.seek(index)
            except EOFError:
                if count is None:
                    break  # the end of a file whose frames were not counted beforehand
                raise
            if index == max_frames:
                raise ImageLoadError(path, f"too many frames (more than {max_frames})")
            img.load()
            # GIF frames may extend past the canvas the header declared.
            total += img.width * img.height
            if total > max_pixels:
                raise ImageLoadError(path, f"{where}too many pixels ({total} > max_pixels {max_pixels})")
            frames.append(pil_to_tensors(ImageOps.exif_transpose(img), apply_exif_orientation=False))
            durations.append(round(img.info.get("duration", 0)))
    return frames, durations


def _alike(
    frames: list[tuple[torch.Tensor, torch.Tensor | None]],
) -> list[tuple[torch.Tensor, torch.Tensor | None]]:
    """Every frame with an alpha (H, W) if any has one: a GIF's first frame may be opaque, later ones not."""
    if all(alpha is None for _, alpha in frames):
        return frames
    return [(rgb, torch.ones(rgb.shape[1:]) if alpha is None else alpha) for rgb, alpha in frames]


def encode_animation(images: Sequence[Image.Image], like: Animation) -> bytes:
    """Images, one per frame of `like`, encoded in its format with its durations and loop count.

    GIF frames get a palette of their own (median cut, 255 colors) and a transparent index where alpha is
    below half; WebP is lossless; APNG keeps 8-bit RGBA. The encoders merge a frame identical to the one
    before it into that one, adding their durations, so what plays is the same.
    """
    if len(images) != len(like.durations) or not images:
        raise ValueError(f"{len(images)} images for an animation of {len(like.durations)} frames")
    frames = [_gif_frame(image) for image in images] if like.format == "GIF" else list(images)
    options: dict[str, object] = {"duration": list(like.durations)}
    if like.loop is not None:
        options["loop"] = like.loop
    if like.format == "GIF":
        # Frames are whole pictures: each is cleared before the next, or its transparent pixels would show
        # the frame before through them.
        options["disposal"] = 2
    elif like.format == "WEBP":
        options["lossless"] = True
    elif like.format != "PNG":
        raise ValueError(f"not an animation format: {like.format!r} (one of {', '.join(ANIMATION_FORMATS)})")
    if like.default_image:  # the poster has no duration: the list is the playing frames'
        options |= {"default_image": True, "duration": list(like.durations[1:])}
    buffer = io.BytesIO()
    frames[0].save(buffer, format=like.format, save_all=True, append_images=frames[1:], **options)
    return buffer.getvalue()


def _gif_frame(image: Image.Image) -> Image.Image:
    """An RGB or RGBA image as a GIF palette frame, transparent index _GIF_TRANSPARENT where alpha < 128."""
    frame = image.convert("RGB").quantize(colors=255, method=Image.Quantize.MEDIANCUT)
    if image.mode == "RGBA":
        palette = frame.getpalette() or []
        frame.putpalette(palette + [0] * (768 - len(palette)))  # room for the transparent index
        clear = image.getchannel("A").point(lambda a: 255 if a < 128 else 0, mode="1")
        frame.paste(_GIF_TRANSPARENT, mask=clear)
        frame.info["transparency"] = _GIF_TRANSPARENT
    return frame


def save_animations(
    paths: Sequence[str | os.PathLike[str]], animations: Sequence[Sequence[Image.Image]], like: Animation
) -> None:
    """Write each list of frames as an animation like `like`, as one unit, as save_pngs does for PNGs.

    Everything is encoded first, then written to temp files, and only when all are written are they renamed
    into place: a failure leaves none of them rather than some.
    """
    encoded = [encode_animation(images, like) for images in animations]
    with ExitStack() as stack:
        for path, data in zip(paths, encoded, strict=True):
            temp = stack.enter_context(atomic_write(path))
            temp.write_bytes(data)


def save_animation(path: str | os.PathLike[str], images: Sequence[Image.Image], like: Animation) -> None:
    """Write images, one per frame of `like`, as one animation in its format, atomically."""
    save_animations([path], [images], like)
