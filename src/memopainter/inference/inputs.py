"""What users hand the library: images in any of the usual in-memory forms, and palettes as hex colors."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image

from memopainter.data.images import load_image, pil_to_tensors

ImageLike = (
    Image.Image | np.ndarray | torch.Tensor | str | os.PathLike | tuple[torch.Tensor, torch.Tensor | None]
)
PaletteLike = str | Sequence[str] | torch.Tensor

MAX_PALETTE_COLORS = 10  # the palette feature holds 10 colors
_HEX = re.compile(r"#?([0-9a-fA-F]{6})")


def parse_palette(palette: str | Sequence[str]) -> torch.Tensor:
    """'#rrggbb,#rrggbb,...' or a list of such strings ('#' optional) -> colors (n, 3) in [0, 1], n <= 10."""
    items = palette.split(",") if isinstance(palette, str) else list(palette)
    colors = []
    for item in items:
        text = item.strip() if isinstance(item, str) else item
        match = _HEX.fullmatch(text) if isinstance(text, str) else None
        if match is None:
            raise ValueError(f"{item!r} is not a palette color; expected #rrggbb, e.g. #ff8000")
        value = int(match.group(1), 16)
        colors.append([(value >> 16) & 255, (value >> 8) & 255, value & 255])
    if not 1 <= len(colors) <= MAX_PALETTE_COLORS:
        raise ValueError(f"a palette holds 1 to {MAX_PALETTE_COLORS} colors, got {len(colors)}")
    return torch.tensor(colors, dtype=torch.float32) / 255.0


def image_tensors(image: ImageLike) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Any supported image input -> rgb (3, H, W) and alpha (H, W) or None, float32 in [0, 1]."""
    if isinstance(image, (str, os.PathLike)):
        return load_image(image)
    if isinstance(image, tuple) and len(image) == 2 and isinstance(image[0], torch.Tensor):
        rgb, alpha = image  # as load_image returns them
        if rgb.dim() != 3 or rgb.shape[0] != 3:
            raise ValueError(f"an (rgb, alpha) pair needs rgb shaped (3, H, W), got {tuple(rgb.shape)}")
        if alpha is not None and (not isinstance(alpha, torch.Tensor) or alpha.shape != rgb.shape[1:]):
            got = tuple(alpha.shape) if hasattr(alpha, "shape") else type(alpha).__name__
            size = tuple(rgb.shape[1:])
            raise ValueError(f"an (rgb, alpha) pair needs alpha a tensor (H, W) = {size}, got {got}")
        return _tensor_tensors(rgb if alpha is None else torch.cat([rgb, alpha[None].to(rgb.dtype)]))
    if isinstance(image, Image.Image):
        return pil_to_tensors(image)
    if isinstance(image, np.ndarray):
        return _array_tensors(image)
    if isinstance(image, torch.Tensor):
        return _tensor_tensors(image)
    raise TypeError(
        "image must be a PIL image, a numpy array, a torch tensor, a file path or an (rgb, alpha) pair, "
        f"got {type(image).__name__}"
    )


def _array_tensors(array: np.ndarray) -> tuple[torch.Tensor, torch.Tensor | None]:
    """A numpy image (H, W), (H, W, 3) or (H, W, 4) of uint8, uint16 or floats in [0, 1] -> rgb, alpha."""
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)):
        raise ValueError(f"numpy image must be shaped (H, W), (H, W, 3) or (H, W, 4), got {array.shape}")
    if array.dtype == np.uint8:
        pixels = torch.from_numpy(np.ascontiguousarray(array)).to(torch.float32).div_(255.0)
    elif array.dtype.kind == "u" and array.dtype.itemsize == 2:  # either byte order: Pillow's I;16B too
        pixels = torch.from_numpy(array.astype(np.float32)).div_(65535.0)
    elif np.issubdtype(array.dtype, np.floating):
        pixels = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))
    else:
        raise TypeError(f"numpy image must be uint8, uint16 or float in [0, 1], got dtype {array.dtype}")
    pixels = pixels[..., None] if pixels.dim() == 2 else pixels  # (H, W, C)
    return _tensor_tensors(pixels.permute(2, 0, 1))


def _tensor_tensors(image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """A float tensor (1, H, W), (3, H, W) or (4, H, W) in [0, 1] -> rgb (3, H, W), alpha (H, W) or None."""
    if image.dim() != 3 or image.shape[0] not in (1, 3, 4):
        shape = tuple(image.shape)
        raise ValueError(f"image tensor must be shaped (1, H, W), (3, H, W) or (4, H, W), got {shape}")
    if image.shape[1] < 1 or image.shape[2] < 1:
        raise ValueError(f"image has no pixels: shape {tuple(image.shape)}")
    if not image.is_floating_point():
        raise TypeError(f"image tensor must hold floats in [0, 1], got {image.dtype}")
    image = image.detach().to("cpu", torch.float32)
    low, high = float(image.min()), float(image.max())
    if not (0.0 <= low and high <= 1.0):  # also false for NaN
        raise ValueError(f"image values must lie in [0, 1], got [{low:.4g}, {high:.4g}]")
    rgb = image[:1].expand(3, -1, -1) if image.shape[0] == 1 else image[:3]
    alpha = image[3] if image.shape[0] == 4 else None
    return rgb, alpha
