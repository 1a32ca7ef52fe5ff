"""Image files <-> float tensors: loading, saving, listing and compositing onto white.

Every image enters the project as `rgb` (3, H, W) float32 in [0, 1] plus `alpha` (H, W) float32 in [0, 1],
or None when the image carries no transparency. `alpha` is returned whenever the image has an alpha channel or
palette / colour-key transparency, even if every pixel happens to be opaque, so that saving it again keeps the
alpha channel. Gray images come back with three equal channels.

16-bit grays keep their precision (value / 65535). 16-bit RGB, RGBA and gray+alpha PNGs are reduced to 8 bits
by Pillow itself, which has no 16-bit modes for them. CMYK and YCbCr use Pillow's plain conversion; ICC
profiles are ignored.
"""

from __future__ import annotations

import os
import struct
import warnings
import zlib
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

from memopainter.files import atomic_write

# About 100 megapixels (a 10000 x 10000 photo): far above any training or inference size, far below the
# memory a decompression bomb would ask for. Pillow's own hard limit (2 * Image.MAX_IMAGE_PIXELS, about
# 179 M by default) still applies above it.
DEFAULT_MAX_PIXELS = 100_000_000
# Longer side over shorter side. The networks see a padded square, so a 20000 x 1 strip is 20000 padded
# rows of nothing; sprite strips and webtoon pages stay far below this.
MAX_ASPECT = 100
# zlib level 1: about 3x faster than Pillow's default 6 on colorized photos, for files about 20% larger.
PNG_COMPRESS_LEVEL = 1

IMAGE_EXTENSIONS = frozenset(
    {".png", ".jpg", ".jpeg", ".jpe", ".jfif", ".webp", ".bmp", ".gif", ".tif", ".tiff"}
)

# Pillow format names that load_image will decode; anything else is refused before decoding.
# The JPEG opener also serves camera multi-picture (MPO) files; DIB is a BMP without its file header.
_FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "DIB", "GIF", "TIFF")

_ALPHA_MODES = ("LA", "La", "PA", "RGBA", "RGBa")
_COLOUR_MODES = ("RGB", "RGBX", "CMYK", "YCbCr")
_SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N")

# What Pillow and its codecs raise on damaged or hostile input (besides OSError and its subclasses).
DECODE_ERRORS = (
    OSError,
    SyntaxError,
    ValueError,
    TypeError,
    IndexError,
    EOFError,
    struct.error,
    zlib.error,
)


class AnimatedImageWarning(UserWarning):
    """An animated image was read as its first frame only."""


class ImageLoadError(ValueError):
    """An image file that cannot be loaded; the message is always "<path>: <problem>" on one line."""

    def __init__(self, path: str | os.PathLike[str], problem: str) -> None:
        self.path = os.fspath(path)
        self.problem = " ".join(str(problem).split())
        super().__init__(" ".join(f"{self.path}: {self.problem}".splitlines()))

    def __reduce__(self) -> tuple[type[ImageLoadError], tuple[str, str]]:
        # The default reduce would call ImageLoadError(message); workers that pickle errors need both parts.
        return (type(self), (self.path, self.problem))


def load_image(
    path: str | os.PathLike[str], *, max_pixels: int = DEFAULT_MAX_PIXELS
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Load an image file as rgb (3, H, W) and alpha (H, W) or None, both float32 in [0, 1]."""
    path = check_image_file(path, max_pixels)
    with decode_errors(path), warnings.catch_warnings():
        # Our own header check below is the authority on size; Pillow's hard limit still raises.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        with Image.open(path, formats=_FORMATS) as img:
            _check_pixels(path, img.size, max_pixels)
            img.load()
            # GIF frames may extend past the logical screen declared in the header.
            _check_pixels(path, img.size, max_pixels)
            _warn_if_animated(path, img)
            img = ImageOps.exif_transpose(img)
    try:
        return pil_to_tensors(img, apply_exif_orientation=False)
    except ValueError as err:
        raise ImageLoadError(path, str(err)) from err


def check_image_file(path: str | os.PathLike[str], max_pixels: int) -> Path:
    """`path` as a Path once it is a non-empty file that can be read; ImageLoadError saying why not."""
    if max_pixels < 1:
        raise ValueError(f"max_pixels must be at least 1, got {max_pixels}")
    path = Path(path)
    if not path.exists():
        broken = "a broken symbolic link or a symbolic link loop"
        raise ImageLoadError(path, broken if path.is_symlink() else "no such file")
    if path.is_dir():
        raise ImageLoadError(path, "is a directory, not an image file")
    try:
        size = path.stat().st_size
    except OSError as err:
        raise ImageLoadError(path, f"cannot read file ({err.strerror or err})") from err
    if size == 0:
        raise ImageLoadError(path, "empty file (0 bytes)")
    return path


@contextmanager
def decode_errors(path: Path, where: str = "", formats: Sequence[str] = _FORMATS) -> Iterator[None]:
    """What Pillow and its codecs raise inside the block, as one ImageLoadError "<path>: <where><problem>".

    `where` places the problem inside the file (an animation's "frame 7: "); ImageLoadErrors pass as they are.
    """
    try:
        yield
    except ImageLoadError:
        raise
    except Image.UnidentifiedImageError as err:
        names = ", ".join(f for f in formats if f != "DIB")
        raise ImageLoadError(path, f"{where}not a recognised image file (supported: {names})") from err
    except Image.DecompressionBombError as err:
        raise ImageLoadError(path, f"{where}too many pixels, refused by Pillow ({err})") from err
    except PermissionError as err:
        raise ImageLoadError(path, f"{where}permission denied") from err
    except MemoryError as err:
        raise ImageLoadError(path, f"{where}out of memory while decoding") from err
    except DECODE_ERRORS as err:
        problem = f"corrupt or truncated image ({err or type(err).__name__})"
        raise ImageLoadError(path, f"{where}{problem}") from err


def _check_pixels(path: Path, size: tuple[int, int], max_pixels: int) -> None:
    width, height = size
    if width * height > max_pixels:
        raise ImageLoadError(
            path, f"too many pixels ({width}x{height} = {width * height} > max_pixels {max_pixels})"
        )
    problem = aspect_problem(height, width)
    if problem is not None:
        raise ImageLoadError(path, problem)


def aspect_problem(height: int, width: int) -> str | None:
    """Why an image of this shape is refused (its sides too unequal), or None."""
    if max(height, width) > MAX_ASPECT * max(min(height, width), 1):
        long, short = ("wider", "height") if width > height else ("taller", "width")
        return f"{width}x{height} is {long} than {MAX_ASPECT} times its {short}; cut it into parts first"
    return None


def _warn_if_animated(path: Path, img: Image.Image) -> None:
    frames = getattr(img, "n_frames", 1)
    if frames > 1:
        message = f"{path}: animated ({frames} frames); only its first frame is read"
        warnings.warn(message, AnimatedImageWarning, stacklevel=3)


def pil_to_tensors(
    img: Image.Image, *, apply_exif_orientation: bool = True
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Convert a PIL image to rgb (3, H, W) and alpha (H, W) or None, both float32 in [0, 1]."""
    if apply_exif_orientation:
        img = ImageOps.exif_transpose(img)
    mode = img.mode

    if mode in _SIXTEEN_BIT_MODES or mode == "I":
        return _sixteen_bit_gray_to_tensors(img)
    if mode == "P":
        has_alpha = "transparency" in img.info or (img.palette is not None and img.palette.mode.endswith("A"))
        img = img.convert("RGBA" if has_alpha else "RGB")
    elif mode in ("1", "L") and "transparency" in img.info:
        img = img.convert("LA")
    elif mode == "RGB" and "transparency" in img.info:
        img = img.convert("RGBA")
    elif mode == "1":
        img = img.convert("L")
    elif mode in ("La", "PA"):
        img = img.convert("LA")
    elif mode == "RGBa":
        img = img.convert("RGBA")
    elif mode in _COLOUR_MODES and mode != "RGB":
        img = img.convert("RGB")
    elif mode not in ("L", "LA", "RGB", "RGBA"):
        raise ValueError(f"unsupported image mode {mode!r}")

    pixels = torch.from_numpy(np.array(img)).to(torch.float32).div_(255.0)  # (H, W) or (H, W, C)
    if pixels.dim() == 2:
        pixels = pixels.unsqueeze(-1)
    colour = pixels[..., :3] if pixels.shape[-1] >= 3 else pixels[..., :1].expand(-1, -1, 3)
    rgb = colour.permute(2, 0, 1).contiguous()  # (3, H, W)
    alpha = pixels[..., -1].contiguous() if img.mode in _ALPHA_MODES else None  # (H, W)
    return rgb, alpha


def _sixteen_bit_gray_to_tensors(img: Image.Image) -> tuple[torch.Tensor, torch.Tensor | None]:
    # Mode "I" holds 32-bit integers; older Pillows open 16-bit PNGs that way, so it is read on the same
    # 0..65535 scale, and anything outside that range is refused rather than clipped.
    values = np.array(img)  # (H, W) uint16, or int32 for mode "I"
    if img.mode == "I" and values.size and (values.min() < 0 or values.max() > 65535):
        raise ValueError(
            f"unsupported image mode 'I' with values {values.min()}..{values.max()} outside 0..65535"
        )
    gray = torch.from_numpy(values.astype(np.float32) / np.float32(65535.0))  # (H, W)
    rgb = gray.expand(3, -1, -1).contiguous()  # (3, H, W)
    key = img.info.get("transparency")
    alpha = torch.from_numpy((values != key).astype(np.float32)) if isinstance(key, int) else None
    return rgb, alpha


def _check_tensors(rgb: torch.Tensor, alpha: torch.Tensor | None) -> None:
    if rgb.dim() != 3 or rgb.shape[0] != 3:
        raise ValueError(f"rgb must be shaped (3, H, W), got {tuple(rgb.shape)}")
    if not rgb.is_floating_point():
        raise TypeError(f"rgb must be a floating point tensor, got {rgb.dtype}")
    if not torch.isfinite(rgb).all():
        raise ValueError("rgb contains NaN or infinite values")
    if alpha is None:
        return
    if alpha.shape != rgb.shape[1:]:
        raise ValueError(f"alpha must be shaped (H, W) = {tuple(rgb.shape[1:])}, got {tuple(alpha.shape)}")
    if not alpha.is_floating_point():
        raise TypeError(f"alpha must be a floating point tensor, got {alpha.dtype}")
    if not torch.isfinite(alpha).all():
        raise ValueError("alpha contains NaN or infinite values")


def _to_bytes(x: torch.Tensor) -> np.ndarray:
    # Values a hair outside [0, 1] are normal after Lab -> RGB; 8-bit quantisation clips them.
    return x.detach().to("cpu", torch.float32).clamp(0.0, 1.0).mul(255.0).round().to(torch.uint8).numpy()


def tensors_to_pil(rgb: torch.Tensor, alpha: torch.Tensor | None = None) -> Image.Image:
    """Convert rgb (3, H, W) and optional alpha (H, W) in [0, 1] to an 8-bit RGB or RGBA PIL image."""
    _check_tensors(rgb, alpha)
    channels = rgb if alpha is None else torch.cat([rgb, alpha.unsqueeze(0)])  # (3 or 4, H, W)
    array = np.ascontiguousarray(_to_bytes(channels).transpose(1, 2, 0))  # (H, W, 3 or 4)
    return Image.fromarray(array, mode="RGB" if alpha is None else "RGBA")


def save_image(path: str | os.PathLike[str], rgb: torch.Tensor, alpha: torch.Tensor | None = None) -> None:
    """Write rgb (3, H, W) and optional alpha (H, W) as an 8-bit PNG, atomically, creating parent folders."""
    save_png(path, tensors_to_pil(rgb, alpha))


def save_png(path: str | os.PathLike[str], image: Image.Image) -> None:
    """Write a PIL image as PNG, atomically, creating parent folders."""
    save_pngs([path], [image])


def save_pngs(paths: Sequence[str | os.PathLike[str]], images: Sequence[Image.Image]) -> None:
    """Write images as PNGs as one unit: every file is encoded to its temp file first, and only when all
    are written are they renamed into place, so a full disk leaves none of them rather than some."""
    paths = [Path(path) for path in paths]
    for path in paths:
        if path.suffix.lower() != ".png":
            raise ValueError(f"{path}: PNG only, the file name must end in .png")
        if path.is_dir():
            raise ValueError(f"{path}: is a directory")
    with ExitStack() as stack:
        for path, image in zip(paths, images, strict=True):
            temp = stack.enter_context(atomic_write(path))
            with open(temp, "wb") as file:
                image.save(file, format="PNG", compress_level=PNG_COMPRESS_LEVEL)


def list_images(root: str | os.PathLike[str], recursive: bool = True) -> list[Path]:
    """Image files under root (IMAGE_EXTENSIONS, any case), hidden ones skipped, sorted by relative path."""
    root = Path(root)
    if not root.exists():
        raise FileNotFoundError(f"{root}: no such directory")
    if not root.is_dir():
        raise NotADirectoryError(f"{root}: not a directory")
    found: list[tuple[tuple[str, ...], Path]] = []
    # os.walk does not follow directory symlinks, so link loops cannot make it run forever.
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".")] if recursive else []
        for name in files:
            file = Path(folder, name)
            if name.startswith(".") or file.suffix.lower() not in IMAGE_EXTENSIONS or not file.is_file():
                continue
            found.append((file.relative_to(root).parts, file))
    found.sort(key=lambda item: item[0])
    return [file for _, file in found]


def composite_on_white(rgb: torch.Tensor, alpha: torch.Tensor | None) -> torch.Tensor:
    """Alpha-composite rgb (..., 3, H, W) onto white using alpha (..., H, W); alpha None returns rgb as is."""
    if alpha is None:
        return rgb
    if rgb.dim() < 3 or rgb.shape[-3] != 3:
        raise ValueError(f"rgb must be shaped (3, H, W) or (B, 3, H, W), got {tuple(rgb.shape)}")
    expected = rgb.shape[:-3] + rgb.shape[-2:]
    if alpha.shape != expected:
        raise ValueError(f"alpha must be shaped {tuple(expected)} to match rgb, got {tuple(alpha.shape)}")
    a = alpha.unsqueeze(-3)  # (..., 1, H, W)
    return rgb * a + (1.0 - a)
