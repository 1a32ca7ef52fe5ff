"""Images of any shape: the padded square is resized without being built, and extreme strips are refused."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from memopainter.cli.main import main
from memopainter.data.images import MAX_ASPECT, AnimatedImageWarning, ImageLoadError, load_image
from memopainter.data.preprocess import fit_square, shrink_padded
from memopainter.inference.fullres import prepare_image


def padded_then_resized(content: torch.Tensor, size: int) -> torch.Tensor:
    """What shrink_padded stands for: build the transparent square, then F.interpolate it."""
    _, h, w = content.shape
    side = max(h, w)
    square = torch.zeros(content.shape[0], side, side)
    square[:, (side - h) // 2 : (side - h) // 2 + h, (side - w) // 2 : (side - w) // 2 + w] = content
    if side == size:
        return square
    return F.interpolate(square[None], size=(size, size), mode="bilinear", antialias=True)[0]


@pytest.mark.parametrize(
    ("h", "w", "size"),
    [(37, 23, 8), (64, 64, 64), (100, 7, 32), (1024, 1024, 64), (1024, 768, 224), (30, 20, 224), (3, 1, 64)],
)
def test_shrink_padded_equals_resizing_the_padded_square(h: int, w: int, size: int) -> None:
    content = torch.rand(2, h, w, generator=torch.Generator().manual_seed(h * w))
    torch.testing.assert_close(
        shrink_padded(content, size), padded_then_resized(content, size), atol=1e-5, rtol=0
    )


def test_fit_square_of_a_long_strip_matches_the_padded_square() -> None:
    rgb, alpha = torch.rand(3, 9, 700), torch.rand(9, 700)
    square, square_alpha = fit_square(rgb, alpha, 32)
    expected = padded_then_resized(torch.cat([rgb * alpha, alpha[None]]), 32)
    torch.testing.assert_close(square_alpha, expected[3].clamp(0, 1), atol=1e-5, rtol=0)
    assert square.shape == (3, 32, 32)


def test_a_strip_at_the_aspect_limit_is_prepared_from_its_own_pixels_only() -> None:
    # The padded square of this strip would hold 6.4 billion floats; what is built holds 2 x 64000.
    prepared = prepare_image(torch.rand(3, 640, 64_000 // 640 * 640)[:, :640], None, 64, 224)
    assert prepared.net_gray.shape == (1, 64, 64)
    strip = prepare_image(torch.rand(3, 1, MAX_ASPECT), None, 64, 224)
    assert strip.backbone_rgb.shape == (3, 224, 224)


def test_a_strip_past_the_aspect_limit_is_refused_by_the_library() -> None:
    with pytest.raises(ValueError, match=f"wider than {MAX_ASPECT} times its height"):
        prepare_image(torch.rand(3, 1, 20_000), None, 64, 224)


def test_a_20000_by_1_png_is_refused_in_one_line_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "strip.png"
    Image.new("L", (20_000, 1)).save(path)  # 101 bytes of PNG
    with pytest.raises(ImageLoadError, match=r"strip\.png: 20000x1 is wider than 100 times its height"):
        load_image(path)


def test_an_animated_gif_warns_that_only_its_first_frame_is_read(tmp_path: Path) -> None:
    path = tmp_path / "walk.gif"
    frames = [Image.new("RGB", (8, 8), color) for color in ("red", "green", "blue")]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0)
    with pytest.warns(AnimatedImageWarning, match=r"walk\.gif: animated \(3 frames\); only its first frame"):
        rgb, _ = load_image(path)
    assert rgb.shape == (3, 8, 8)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Image.new("RGB", (8, 8)).save(tmp_path / "still.gif")
        load_image(tmp_path / "still.gif")  # a still GIF says nothing


def test_the_cli_prints_the_animation_warning_as_one_line(tmp_path: Path, capsys) -> None:
    path = tmp_path / "walk.gif"
    frames = [Image.new("RGB", (8, 8), color) for color in ("red", "green")]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0)
    assert main(["features", str(path)]) == 0
    err = capsys.readouterr().err
    assert err == f"warning: {path}: animated (2 frames); only its first frame is read\n"
