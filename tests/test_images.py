"""Specification of image loading, saving, listing and compositing (memopainter.data.images)."""

from __future__ import annotations

import io
import os
import pickle
import struct
import sys
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from memopainter.data.images import (
    DEFAULT_MAX_PIXELS,
    IMAGE_EXTENSIONS,
    AnimatedImageWarning,
    ImageLoadError,
    composite_on_white,
    list_images,
    load_image,
    pil_to_tensors,
    save_image,
    tensors_to_pil,
)

ORIENTATION = 0x0112  # EXIF tag


def _noise(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)


def _bytes(t: torch.Tensor) -> np.ndarray:
    """Tensor in [0, 1] back to the 8-bit values it was read from."""
    return (t * 255).round().to(torch.uint8).numpy()


def _png_chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares width x height 8-bit gray pixels but carries no pixel data."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", zlib.compress(b""))
        + _png_chunk(b"IEND", b"")
    )


# ---------------------------------------------------------------- loading: formats and modes


def test_rgb_png_loads_as_float32_3hw_in_unit_range_without_alpha(tmp_path: Path) -> None:
    pixels = _noise((5, 7, 3))
    Image.fromarray(pixels, "RGB").save(tmp_path / "x.png")
    rgb, alpha = load_image(tmp_path / "x.png")
    assert rgb.shape == (3, 5, 7) and rgb.dtype == torch.float32 and rgb.is_contiguous()
    assert alpha is None
    assert 0.0 <= rgb.min() and rgb.max() <= 1.0
    np.testing.assert_array_equal(_bytes(rgb).transpose(1, 2, 0), pixels)


def test_rgba_png_returns_alpha_hw(tmp_path: Path) -> None:
    pixels = _noise((4, 6, 4), seed=1)
    Image.fromarray(pixels, "RGBA").save(tmp_path / "x.png")
    rgb, alpha = load_image(str(tmp_path / "x.png"))
    assert alpha is not None and alpha.shape == (4, 6) and alpha.dtype == torch.float32
    np.testing.assert_array_equal(_bytes(rgb).transpose(1, 2, 0), pixels[..., :3])
    np.testing.assert_array_equal(_bytes(alpha), pixels[..., 3])


def test_fully_opaque_rgba_still_returns_alpha_of_ones(tmp_path: Path) -> None:
    Image.new("RGBA", (3, 2), (1, 2, 3, 255)).save(tmp_path / "x.png")
    _, alpha = load_image(tmp_path / "x.png")
    assert alpha is not None and torch.equal(alpha, torch.ones(2, 3))


def test_gray_png_gives_three_equal_channels(tmp_path: Path) -> None:
    pixels = _noise((3, 4), seed=2)
    Image.fromarray(pixels, "L").save(tmp_path / "x.png")
    rgb, alpha = load_image(tmp_path / "x.png")
    assert rgb.shape == (3, 3, 4) and alpha is None
    for c in range(3):
        np.testing.assert_array_equal(_bytes(rgb[c]), pixels)


def test_gray_alpha_png_splits_gray_and_alpha(tmp_path: Path) -> None:
    Image.new("LA", (2, 2), (51, 102)).save(tmp_path / "x.png")
    rgb, alpha = load_image(tmp_path / "x.png")
    assert torch.allclose(rgb, torch.full((3, 2, 2), 0.2))  # 51 / 255
    assert alpha is not None and torch.allclose(alpha, torch.full((2, 2), 0.4))  # 102 / 255


def test_bilevel_png_reads_as_zeros_and_ones(tmp_path: Path) -> None:
    img = Image.new("1", (2, 1))
    img.putpixel((1, 0), 1)
    img.save(tmp_path / "x.png")
    rgb, alpha = load_image(tmp_path / "x.png")
    assert alpha is None
    assert torch.equal(rgb, torch.tensor([[[0.0, 1.0]]] * 3))


def test_16bit_gray_png_keeps_full_precision(tmp_path: Path) -> None:
    values = np.array([[1000, 1001], [0, 65535]], dtype=np.uint16)
    Image.fromarray(values).save(tmp_path / "x.png")
    with Image.open(tmp_path / "x.png") as check:
        assert check.mode.startswith("I")  # really stored as 16 bits
    rgb, alpha = load_image(tmp_path / "x.png")
    assert alpha is None
    expected = torch.tensor([[1000 / 65535, 1001 / 65535], [0.0, 1.0]])
    for c in range(3):
        assert torch.allclose(rgb[c], expected, atol=1e-6, rtol=0)
    assert rgb[0, 0, 1] > rgb[0, 0, 0]  # 1000 and 1001 are one 8-bit step apart from none


def test_16bit_gray_png_with_colour_key_gives_alpha(tmp_path: Path) -> None:
    values = np.array([[1000, 2000]], dtype=np.uint16)
    Image.fromarray(values).save(tmp_path / "x.png", transparency=2000)
    _, alpha = load_image(tmp_path / "x.png")
    assert alpha is not None and torch.equal(alpha, torch.tensor([[1.0, 0.0]]))


def _palette_image() -> Image.Image:
    img = Image.new("P", (3, 1))
    img.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255])
    img.putdata([0, 1, 2])
    return img


def test_palette_png_without_transparency_expands_to_rgb(tmp_path: Path) -> None:
    _palette_image().save(tmp_path / "x.png")
    rgb, alpha = load_image(tmp_path / "x.png")
    assert alpha is None
    assert torch.equal(rgb, torch.eye(3).reshape(3, 1, 3))  # red, green, blue pixels


def test_palette_png_transparent_index_gives_alpha_zero_there(tmp_path: Path) -> None:
    _palette_image().save(tmp_path / "x.png", transparency=1)
    rgb, alpha = load_image(tmp_path / "x.png")
    assert alpha is not None and torch.equal(alpha, torch.tensor([[1.0, 0.0, 1.0]]))
    assert torch.equal(rgb[:, 0, 0], torch.tensor([1.0, 0.0, 0.0]))


def test_palette_png_per_entry_alphas_are_read(tmp_path: Path) -> None:
    _palette_image().save(tmp_path / "x.png", transparency=bytes([0, 51, 255]))
    _, alpha = load_image(tmp_path / "x.png")
    assert alpha is not None and torch.allclose(alpha, torch.tensor([[0.0, 0.2, 1.0]]))


def test_rgb_png_colour_key_becomes_alpha(tmp_path: Path) -> None:
    img = Image.new("RGB", (2, 1), (255, 0, 255))
    img.putpixel((1, 0), (10, 20, 30))
    img.save(tmp_path / "x.png", transparency=(255, 0, 255))
    _, alpha = load_image(tmp_path / "x.png")
    assert alpha is not None and torch.equal(alpha, torch.tensor([[0.0, 1.0]]))


def test_gray_png_colour_key_becomes_alpha(tmp_path: Path) -> None:
    img = Image.new("L", (2, 1), 7)
    img.putpixel((0, 0), 200)
    img.save(tmp_path / "x.png", transparency=7)
    _, alpha = load_image(tmp_path / "x.png")
    assert alpha is not None and torch.equal(alpha, torch.tensor([[1.0, 0.0]]))


def test_jpeg_loads_close_to_its_colour(tmp_path: Path) -> None:
    Image.new("RGB", (16, 16), (200, 100, 50)).save(tmp_path / "x.jpg", quality=95)
    rgb, alpha = load_image(tmp_path / "x.jpg")
    assert alpha is None
    assert torch.allclose(rgb.mean(dim=(1, 2)), torch.tensor([200, 100, 50]) / 255, atol=3 / 255)


def test_jpeg_exif_orientation_is_applied(tmp_path: Path) -> None:
    # Stored 32 wide x 16 high, left half red, right half blue; orientation 6 = rotate 90 degrees clockwise
    # to display, which puts the red half on top.
    stored = np.zeros((16, 32, 3), dtype=np.uint8)
    stored[:, :16] = (255, 0, 0)
    stored[:, 16:] = (0, 0, 255)
    exif = Image.Exif()
    exif[ORIENTATION] = 6
    Image.fromarray(stored, "RGB").save(tmp_path / "x.jpg", quality=95, exif=exif.tobytes())
    rgb, _ = load_image(tmp_path / "x.jpg")
    assert rgb.shape == (3, 32, 16)
    top, bottom = rgb[:, 2:14].mean(dim=(1, 2)), rgb[:, 18:30].mean(dim=(1, 2))
    assert torch.allclose(top, torch.tensor([1.0, 0.0, 0.0]), atol=0.05)
    assert torch.allclose(bottom, torch.tensor([0.0, 0.0, 1.0]), atol=0.05)


def test_lossless_webp_rgb_and_rgba_round_trip_exactly(tmp_path: Path) -> None:
    pixels = _noise((6, 5, 4), seed=3)
    pixels[..., 3] = np.maximum(pixels[..., 3], 1)  # WebP may rewrite colours under alpha 0
    Image.fromarray(pixels, "RGBA").save(tmp_path / "a.webp", lossless=True, exact=True)
    Image.fromarray(pixels[..., :3], "RGB").save(tmp_path / "b.webp", lossless=True)
    rgb, alpha = load_image(tmp_path / "a.webp")
    assert alpha is not None
    np.testing.assert_array_equal(_bytes(rgb).transpose(1, 2, 0), pixels[..., :3])
    np.testing.assert_array_equal(_bytes(alpha), pixels[..., 3])
    rgb, alpha = load_image(tmp_path / "b.webp")
    assert alpha is None
    np.testing.assert_array_equal(_bytes(rgb).transpose(1, 2, 0), pixels[..., :3])


def test_bmp_round_trips_exactly(tmp_path: Path) -> None:
    pixels = _noise((3, 5, 3), seed=4)
    Image.fromarray(pixels, "RGB").save(tmp_path / "x.bmp")
    rgb, alpha = load_image(tmp_path / "x.bmp")
    assert alpha is None
    np.testing.assert_array_equal(_bytes(rgb).transpose(1, 2, 0), pixels)


def test_animated_gif_gives_its_first_frame(tmp_path: Path) -> None:
    red, blue = Image.new("RGB", (4, 4), (255, 0, 0)), Image.new("RGB", (4, 4), (0, 0, 255))
    red.save(tmp_path / "x.gif", save_all=True, append_images=[blue], duration=100)
    with pytest.warns(AnimatedImageWarning):
        rgb, _ = load_image(tmp_path / "x.gif")
    assert torch.equal(rgb, torch.tensor([1.0, 0.0, 0.0]).reshape(3, 1, 1).expand(3, 4, 4))


def test_gif_transparency_gives_alpha(tmp_path: Path) -> None:
    _palette_image().save(tmp_path / "x.gif", transparency=2)
    _, alpha = load_image(tmp_path / "x.gif")
    assert alpha is not None and torch.equal(alpha, torch.tensor([[1.0, 1.0, 0.0]]))


def test_tiff_rgb_and_16bit_gray_round_trip(tmp_path: Path) -> None:
    pixels = _noise((4, 3, 3), seed=5)
    Image.fromarray(pixels, "RGB").save(tmp_path / "a.tif")
    rgb, _ = load_image(tmp_path / "a.tif")
    np.testing.assert_array_equal(_bytes(rgb).transpose(1, 2, 0), pixels)
    Image.fromarray(np.full((2, 2), 1000, dtype=np.uint16)).save(tmp_path / "b.tiff")
    rgb, _ = load_image(tmp_path / "b.tiff")
    assert torch.allclose(rgb, torch.full((3, 2, 2), 1000 / 65535), atol=1e-6, rtol=0)


def test_format_is_sniffed_from_content_not_extension(tmp_path: Path) -> None:
    Image.new("RGB", (2, 2), (0, 255, 0)).save(tmp_path / "really_a_png.jpg", format="PNG")
    rgb, _ = load_image(tmp_path / "really_a_png.jpg")
    assert torch.equal(rgb[:, 0, 0], torch.tensor([0.0, 1.0, 0.0]))


def test_default_max_pixels_admits_a_4096_square_image(tmp_path: Path) -> None:
    assert 4096 * 4096 < DEFAULT_MAX_PIXELS
    Image.new("L", (4096, 4096), 255).save(tmp_path / "big.png")
    rgb, _ = load_image(tmp_path / "big.png")
    assert rgb.shape == (3, 4096, 4096) and rgb[:, -1, -1].tolist() == [1.0, 1.0, 1.0]


# ---------------------------------------------------------------- loading: errors


def _assert_load_error(path: Path, fragment: str, **kwargs: int) -> ImageLoadError:
    with pytest.raises(ImageLoadError) as info:
        load_image(path, **kwargs)
    message = str(info.value)
    assert message.startswith(f"{path}: ") and "\n" not in message
    assert fragment in message
    return info.value


def test_missing_file_is_refused(tmp_path: Path) -> None:
    _assert_load_error(tmp_path / "nope.png", "no such file")


def test_directory_is_refused(tmp_path: Path) -> None:
    (tmp_path / "folder.png").mkdir()
    _assert_load_error(tmp_path / "folder.png", "is a directory")


def test_zero_byte_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "empty.png").write_bytes(b"")
    _assert_load_error(tmp_path / "empty.png", "empty file")


def test_text_file_named_png_is_refused(tmp_path: Path) -> None:
    (tmp_path / "notes.png").write_text("hello, I am not a picture\n")
    _assert_load_error(tmp_path / "notes.png", "not a recognised image file")


def test_format_outside_the_supported_list_is_refused(tmp_path: Path) -> None:
    Image.new("RGB", (2, 2)).save(tmp_path / "x.ppm")
    _assert_load_error(tmp_path / "x.ppm", "not a recognised image file")


@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_truncated_image_is_refused(tmp_path: Path, suffix: str) -> None:
    buffer = io.BytesIO()
    Image.fromarray(_noise((64, 64, 3), seed=6), "RGB").save(buffer, format=suffix[1:].replace("jpg", "jpeg"))
    path = tmp_path / f"cut{suffix}"
    path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    _assert_load_error(path, "corrupt or truncated")


def test_corrupt_png_data_is_refused(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    Image.fromarray(_noise((64, 64, 3), seed=7), "RGB").save(buffer, format="PNG")
    data = bytearray(buffer.getvalue())
    data[200:240] = bytes(40)  # inside the IDAT chunk: its CRC no longer matches
    (tmp_path / "bad.png").write_bytes(bytes(data))
    _assert_load_error(tmp_path / "bad.png", "corrupt or truncated")


def test_header_larger_than_max_pixels_is_refused_before_decoding(tmp_path: Path) -> None:
    # 12000 x 12000 = 144 M pixels: over our default, under Pillow's hard limit. The file holds no pixel
    # data, so a refusal that names the pixel count (not truncation) proves the header was checked first.
    path = tmp_path / "bomb.png"
    path.write_bytes(_png_header_only(12000, 12000))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Pillow's DecompressionBombWarning must not leak either
        _assert_load_error(path, "too many pixels (12000x12000 = 144000000 > max_pixels 100000000)")


def test_pillow_decompression_bomb_error_becomes_image_load_error(tmp_path: Path) -> None:
    path = tmp_path / "huge.png"
    path.write_bytes(_png_header_only(100_000, 100_000))
    _assert_load_error(path, "too many pixels", max_pixels=10**12)


def test_max_pixels_is_an_inclusive_limit(tmp_path: Path) -> None:
    Image.new("RGB", (10, 10)).save(tmp_path / "x.png")
    assert load_image(tmp_path / "x.png", max_pixels=100)[0].shape == (3, 10, 10)
    _assert_load_error(tmp_path / "x.png", "10x10 = 100 > max_pixels 99", max_pixels=99)


def test_unsupported_mode_is_refused(tmp_path: Path) -> None:
    Image.new("F", (2, 2), 0.5).save(tmp_path / "float.tif")
    _assert_load_error(tmp_path / "float.tif", "unsupported image mode 'F'")


def test_image_load_error_is_a_value_error_that_pickles() -> None:
    err = ImageLoadError("a/b.png", "broken\nbadly")
    assert isinstance(err, ValueError)
    assert str(err) == "a/b.png: broken badly"
    clone = pickle.loads(pickle.dumps(err))
    assert str(clone) == str(err) and clone.path == "a/b.png" and clone.problem == "broken badly"


# ---------------------------------------------------------------- in-memory conversion


def test_pil_to_tensors_matches_load_image(tmp_path: Path) -> None:
    img = Image.fromarray(_noise((3, 4, 4), seed=8), "RGBA")
    img.save(tmp_path / "x.png")
    rgb, alpha = pil_to_tensors(img)
    rgb2, alpha2 = load_image(tmp_path / "x.png")
    assert torch.equal(rgb, rgb2) and alpha is not None and alpha2 is not None and torch.equal(alpha, alpha2)


def test_pil_to_tensors_applies_exif_orientation_unless_told_not_to() -> None:
    img = Image.new("RGB", (6, 2))
    exif = img.getexif()
    exif[ORIENTATION] = 8
    img.info["exif"] = exif.tobytes()
    assert pil_to_tensors(img)[0].shape == (3, 6, 2)
    assert pil_to_tensors(img, apply_exif_orientation=False)[0].shape == (3, 2, 6)


def test_pil_to_tensors_converts_cmyk() -> None:
    img = Image.new("CMYK", (2, 1), (0, 0, 0, 0))  # white
    img.putpixel((1, 0), (255, 0, 0, 0))  # cyan
    rgb, alpha = pil_to_tensors(img)
    assert alpha is None
    assert torch.equal(rgb, torch.tensor([[[1.0, 0.0]], [[1.0, 1.0]], [[1.0, 1.0]]]))


def test_pil_to_tensors_refuses_float_and_out_of_range_int_images() -> None:
    with pytest.raises(ValueError, match="unsupported image mode 'F'"):
        pil_to_tensors(Image.new("F", (2, 2)))
    with pytest.raises(ValueError, match="outside 0..65535"):
        pil_to_tensors(Image.new("I", (2, 2), 70000))


def test_mode_i_is_read_on_the_16bit_scale() -> None:
    rgb, _ = pil_to_tensors(Image.new("I", (1, 1), 65535))
    assert torch.equal(rgb, torch.ones(3, 1, 1))


def test_tensors_to_pil_rounds_and_clips_to_8_bits() -> None:
    rgb = torch.tensor([[[0.0, 1.0, -0.1, 1.2]], [[0.2, 0.2, 0.2, 0.2]], [[0.4, 0.4, 0.4, 0.4]]])
    img = tensors_to_pil(rgb)
    assert img.mode == "RGB" and img.size == (4, 1)
    assert np.array(img)[0].tolist() == [[0, 51, 102], [255, 51, 102], [0, 51, 102], [255, 51, 102]]
    rgba = tensors_to_pil(rgb, torch.tensor([[0.0, 0.2, 0.4, 1.0]]))
    assert rgba.mode == "RGBA" and np.array(rgba)[0, :, 3].tolist() == [0, 51, 102, 255]


@pytest.mark.parametrize(
    ("rgb", "alpha", "error"),
    [
        (torch.zeros(4, 2, 2), None, "rgb must be shaped"),
        (torch.zeros(1, 3, 2, 2), None, "rgb must be shaped"),
        (torch.zeros(3, 2, 2), torch.zeros(2, 3), "alpha must be shaped"),
        (torch.full((3, 2, 2), float("nan")), None, "rgb contains NaN"),
        (torch.zeros(3, 2, 2), torch.full((2, 2), float("inf")), "alpha contains NaN"),
    ],
)
def test_tensors_to_pil_refuses_bad_tensors(
    rgb: torch.Tensor, alpha: torch.Tensor | None, error: str
) -> None:
    with pytest.raises(ValueError, match=error):
        tensors_to_pil(rgb, alpha)


def test_tensors_to_pil_refuses_integer_tensors() -> None:
    with pytest.raises(TypeError, match="floating point"):
        tensors_to_pil(torch.zeros(3, 2, 2, dtype=torch.uint8))


# ---------------------------------------------------------------- saving


def test_save_image_round_trips_rgb_and_rgba(tmp_path: Path) -> None:
    pixels = _noise((5, 4, 4), seed=9)
    rgb = torch.from_numpy(pixels[..., :3]).permute(2, 0, 1).float() / 255
    alpha = torch.from_numpy(pixels[..., 3]).float() / 255
    save_image(tmp_path / "rgb.png", rgb)
    save_image(tmp_path / "rgba.png", rgb, alpha)
    with Image.open(tmp_path / "rgb.png") as a, Image.open(tmp_path / "rgba.png") as b:
        assert (a.format, a.mode, b.format, b.mode) == ("PNG", "RGB", "PNG", "RGBA")
    rgb2, alpha2 = load_image(tmp_path / "rgba.png")
    assert torch.equal(_bytes_t(rgb2), _bytes_t(rgb)) and alpha2 is not None
    assert torch.equal(_bytes_t(alpha2), _bytes_t(alpha))
    assert load_image(tmp_path / "rgb.png")[1] is None


def _bytes_t(t: torch.Tensor) -> torch.Tensor:
    return (t * 255).round()


def test_save_image_creates_parent_folders_and_leaves_no_temp_files(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "out.png"
    save_image(target, torch.zeros(3, 2, 2))
    assert target.is_file()
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["a", "b", "out.png"]


def test_save_image_replaces_an_existing_file(tmp_path: Path) -> None:
    target = tmp_path / "out.png"
    save_image(target, torch.zeros(3, 2, 2))
    save_image(target, torch.ones(3, 2, 2))
    assert torch.equal(load_image(target)[0], torch.ones(3, 2, 2))
    assert [p.name for p in tmp_path.iterdir()] == ["out.png"]


def test_failed_save_keeps_the_old_file_and_removes_its_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "out.png"
    target.write_bytes(b"previous contents")

    def half_written_save(self: Image.Image, fp: io.BufferedWriter, *args: object, **kwargs: object) -> None:
        fp.write(b"\x89PNG partial")
        raise OSError("disk full")

    monkeypatch.setattr(Image.Image, "save", half_written_save)
    with pytest.raises(OSError, match="disk full"):
        save_image(target, torch.zeros(3, 2, 2))
    assert target.read_bytes() == b"previous contents"
    assert [p.name for p in tmp_path.iterdir()] == ["out.png"]


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permissions")
def test_saved_file_permissions_follow_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        save_image(tmp_path / "out.png", torch.zeros(3, 1, 1))
    finally:
        os.umask(old)
    assert (tmp_path / "out.png").stat().st_mode & 0o777 == 0o644


def test_save_image_refuses_a_non_png_name(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"out\.jpg: PNG only"):
        save_image(tmp_path / "out.jpg", torch.zeros(3, 2, 2))
    assert list(tmp_path.iterdir()) == []


def test_save_image_accepts_an_upper_case_png_suffix(tmp_path: Path) -> None:
    save_image(tmp_path / "OUT.PNG", torch.zeros(3, 2, 2))
    assert (tmp_path / "OUT.PNG").is_file()


# ---------------------------------------------------------------- listing


def _touch(root: Path, *names: str) -> None:
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"x")


def test_image_extensions_are_lower_case_suffixes() -> None:
    assert {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff"} <= IMAGE_EXTENSIONS
    assert all(ext.startswith(".") and ext == ext.lower() for ext in IMAGE_EXTENSIONS)


def test_list_images_is_sorted_case_insensitive_on_suffix_and_skips_hidden(tmp_path: Path) -> None:
    _touch(
        tmp_path,
        "b.PNG",
        "a.jpg",
        "A.png",
        "a-b.png",
        "a/x.png",
        "sub/x.Jpeg",
        "sub/deeper/d.tiff",
        "sub/c.webp",
        "notes.txt",
        "png",
        ".hidden.png",
        ".cache/e.png",
        "sub/.git/f.png",
    )
    found = list_images(tmp_path)
    assert [p.relative_to(tmp_path).as_posix() for p in found] == [
        "A.png",
        "a/x.png",  # folder "a" sorts before file "a-b.png": paths are compared part by part
        "a-b.png",
        "a.jpg",
        "b.PNG",
        "sub/c.webp",
        "sub/deeper/d.tiff",
        "sub/x.Jpeg",
    ]
    assert all(p.parent == tmp_path or tmp_path in p.parents for p in found)


def test_list_images_non_recursive_lists_only_the_top_folder(tmp_path: Path) -> None:
    _touch(tmp_path, "b.gif", "a.bmp", "sub/c.png")
    assert [p.name for p in list_images(tmp_path, recursive=False)] == ["a.bmp", "b.gif"]


def test_list_images_skips_folders_named_like_images(tmp_path: Path) -> None:
    (tmp_path / "looks_like.png").mkdir()
    _touch(tmp_path, "looks_like.png/inner.png")
    assert [p.name for p in list_images(tmp_path)] == ["inner.png"]


def test_list_images_refuses_missing_or_file_roots(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no such directory"):
        list_images(tmp_path / "missing")
    _touch(tmp_path, "x.png")
    with pytest.raises(NotADirectoryError, match="not a directory"):
        list_images(tmp_path / "x.png")


# ---------------------------------------------------------------- compositing


def test_composite_on_white_blends_with_alpha() -> None:
    rgb = torch.tensor([0.2, 0.6, 1.0]).reshape(3, 1, 1).expand(3, 1, 3)
    alpha = torch.tensor([[0.0, 0.25, 1.0]])
    out = composite_on_white(rgb, alpha)
    # 0.2 * a + (1 - a) for the red channel: 1.0, 0.8, 0.2
    assert torch.allclose(out[0], torch.tensor([[1.0, 0.8, 0.2]]))
    assert torch.allclose(out[1], torch.tensor([[1.0, 0.9, 0.6]]))
    assert torch.allclose(out[2], torch.ones(1, 3))


def test_composite_on_white_handles_batches() -> None:
    rgb = torch.zeros(2, 3, 2, 2)
    alpha = torch.stack([torch.ones(2, 2), torch.full((2, 2), 0.5)])
    out = composite_on_white(rgb, alpha)
    assert out.shape == (2, 3, 2, 2)
    assert torch.equal(out[0], torch.zeros(3, 2, 2)) and torch.equal(out[1], torch.full((3, 2, 2), 0.5))


def test_composite_on_white_without_alpha_returns_rgb_unchanged() -> None:
    rgb = torch.rand(3, 2, 2, generator=torch.Generator().manual_seed(0))
    assert composite_on_white(rgb, None) is rgb


def test_composite_on_white_refuses_mismatched_alpha() -> None:
    with pytest.raises(ValueError, match="alpha must be shaped"):
        composite_on_white(torch.zeros(2, 3, 4, 4), torch.zeros(4, 4))
    with pytest.raises(ValueError, match="rgb must be shaped"):
        composite_on_white(torch.zeros(4, 4, 4), torch.zeros(4, 4))


def test_a_symlink_loop_is_reported_as_one(tmp_path: Path) -> None:
    loop = tmp_path / "loop.png"
    loop.symlink_to(loop)
    with pytest.raises(ImageLoadError, match=r"loop\.png: a broken symbolic link or a symbolic link loop"):
        load_image(loop)
