"""Specification of training data: classes from folders, square network tensors, masked color features and a
content-keyed feature cache that makes a second load free."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from PIL import Image, ImageDraw

import memopainter.data.dataset as dataset_module
from memopainter.color.features import color_feature
from memopainter.data.cache import FeatureCache
from memopainter.data.dataset import FEATURE_VERSION, load_training_data, scan_images
from memopainter.data.descriptors import LIGHTNESS_BINS
from memopainter.data.images import ImageLoadError, load_image
from memopainter.networks.backbones import load_backbone

pytestmark = pytest.mark.usefixtures("cache_dir")

SIZE = 32


@pytest.fixture(scope="module")
def backbone() -> torch.nn.Module:
    """The tiny random backbone: real code path, no weights file."""
    return load_backbone("tiny")


def canvas_with_sprite(
    canvas: tuple[int, int], sprite_at: tuple[int, int], hidden: tuple[int, int, int]
) -> Image.Image:
    """A fully transparent canvas whose RGB is `hidden`, with a 40x40 red and yellow sprite at `sprite_at`."""
    image = Image.new("RGBA", canvas, (*hidden, 0))
    draw = ImageDraw.Draw(image)
    x, y = sprite_at
    draw.rectangle((x, y, x + 39, y + 39), fill=(200, 30, 40, 255))
    draw.rectangle((x + 10, y + 15, x + 29, y + 24), fill=(240, 200, 40, 255))
    return image


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch, backbone: torch.nn.Module) -> Iterator[dict[str, int]]:
    """Call counts of the backbone and of the color feature, for checking that the cache is used."""
    calls = {"backbone": 0, "color": 0}

    def counted_color_feature(*args, **kwargs):
        calls["color"] += 1
        return color_feature(*args, **kwargs)

    def count_forward(module, inputs, output):
        calls["backbone"] += 1

    monkeypatch.setattr(dataset_module, "color_feature", counted_color_feature)
    handle = backbone.register_forward_hook(count_forward)
    yield calls
    handle.remove()


# Classes and labels


def test_top_level_subfolders_are_the_classes_sorted_by_name(sprite_dir: Path, backbone) -> None:
    nested = sprite_dir / "slime" / "big" / "deep.png"
    nested.parent.mkdir()
    shutil.copy(sprite_dir / "slime" / "slime_0.png", nested)
    data = load_training_data(sprite_dir, SIZE, "dist", backbone)
    assert data.class_names == ["knight", "slime", "wizard"]
    names = [r.path.relative_to(sprite_dir).as_posix() for r in data.records]
    assert names[3:7] == ["slime/big/deep.png", "slime/slime_0.png", "slime/slime_1.png", "slime/slime_2.png"]
    assert data.labels.tolist() == [0, 0, 0, 1, 1, 1, 1, 2, 2, 2]
    assert data.records[3].class_name == "slime"


def test_a_flat_folder_is_unlabelled(tmp_path: Path, sprite_dir: Path) -> None:
    flat = tmp_path / "flat"
    flat.mkdir()
    for path in sorted(sprite_dir.rglob("*.png")):
        shutil.copy(path, flat / path.name)
    data = load_training_data(flat, SIZE, "rgb")
    assert data.class_names == []
    assert data.labels.tolist() == [-1] * 9
    assert all(r.class_name is None for r in data.records)


def test_images_at_the_top_next_to_class_folders_get_label_minus_one(sprite_dir: Path) -> None:
    shutil.copy(sprite_dir / "knight" / "knight_0.png", sprite_dir / "loose.png")
    records = scan_images(sprite_dir)
    assert {r.path.name: r.class_name for r in records}["loose.png"] is None
    data = load_training_data(sprite_dir, SIZE, "rgb")
    labels = {r.path.name: int(label) for r, label in zip(data.records, data.labels, strict=True)}
    assert labels["loose.png"] == -1
    assert labels["knight_0.png"] == 0


# Tensors the networks see


def test_images_of_any_size_and_aspect_ratio_come_out_square(sprite_dir: Path, backbone) -> None:
    sizes = set()
    for path in sprite_dir.rglob("*.png"):
        with Image.open(path) as image:
            sizes.add(image.size)
    assert {w > h for w, h in sizes} == {True, False}  # both wide and tall sprites are in the data
    data = load_training_data(sprite_dir, SIZE, "dist", backbone)
    assert len(data) == 9
    assert data.gray.shape == (9, 1, SIZE, SIZE)
    assert data.ab.shape == (9, 2, SIZE, SIZE)
    assert data.color.shape == (9, 313)
    assert data.query_features.shape == (9, 32 + LIGHTNESS_BINS)  # pooled, then the lightness histogram
    assert data.gray.dtype == data.ab.dtype == torch.float32
    assert 0.0 <= float(data.gray.min()) and float(data.gray.max()) <= 1.0 + 1e-4
    assert float(data.ab.abs().max()) <= 1.0


def test_the_rgb_feature_is_ten_colors_flattened(sprite_dir: Path) -> None:
    data = load_training_data(sprite_dir, SIZE, "rgb")
    assert data.color.shape == (9, 30)
    assert data.query_features is None


def test_transparent_pixels_are_white_for_the_networks(tmp_path: Path) -> None:
    folder = tmp_path / "half"
    folder.mkdir()
    image = Image.new("RGBA", (64, 64), (255, 0, 255, 0))  # magenta hidden under alpha 0
    ImageDraw.Draw(image).rectangle((0, 0, 31, 63), fill=(30, 60, 200, 255))
    image.save(folder / "half.png")
    data = load_training_data(folder, SIZE, "dist")
    right = (slice(None), slice(None), slice(None), slice(20, None))  # away from the antialiased edge
    assert torch.allclose(data.gray[right], torch.ones(1), atol=1e-3)  # L / 100 = 1: white
    assert float(data.ab[right].abs().max()) < 1e-3  # |ab| < 0.11: neutral, no trace of magenta
    assert float(data.ab[..., :12].abs().max()) > 0.3  # the opaque blue half keeps its color


def test_padding_of_a_wide_image_is_white_for_the_networks(tmp_path: Path) -> None:
    folder = tmp_path / "wide"
    folder.mkdir()
    Image.new("RGB", (64, 16), (30, 60, 200)).save(folder / "wide.png")
    data = load_training_data(folder, SIZE, "dist")
    # 64x16 padded to 64x64 and halved: the image fills rows 12..19, the rest is white padding.
    assert torch.allclose(data.gray[0, 0, :10], torch.ones(1), atol=1e-3)
    assert torch.allclose(data.gray[0, 0, 22:], torch.ones(1), atol=1e-3)
    assert float(data.gray[0, 0, 14:18].max()) < 0.5


@pytest.mark.parametrize("feature", ["dist", "rgb"])
def test_color_under_alpha_zero_does_not_count_in_the_color_feature(tmp_path: Path, feature: str) -> None:
    sprite = canvas_with_sprite((40, 40), (0, 0), hidden=(0, 0, 0))
    huge = canvas_with_sprite((200, 160), (80, 60), hidden=(255, 0, 255))
    sprite.save(tmp_path / "sprite.png")
    huge.save(tmp_path / "huge.png")
    alone = color_feature(*load_image(tmp_path / "sprite.png"), feature)
    hidden = color_feature(*load_image(tmp_path / "huge.png"), feature)
    assert torch.allclose(alone, hidden, atol=1e-6)


@pytest.mark.parametrize("feature", ["dist", "rgb"])
def test_color_under_alpha_zero_does_not_leak_when_large_images_are_shrunk(
    tmp_path: Path, feature: str
) -> None:
    # 600 px wide: the color feature is taken from a copy shrunk to 256 px, where pixels are blended.
    for name, hidden in (("black", (0, 0, 0)), ("magenta", (255, 0, 255))):
        folder = tmp_path / name
        folder.mkdir()
        canvas_with_sprite((600, 400), (281, 181), hidden).save(folder / "sprite.png")
    black = load_training_data(tmp_path / "black", SIZE, feature, cache=FeatureCache(tmp_path / "c1"))
    magenta = load_training_data(tmp_path / "magenta", SIZE, feature, cache=FeatureCache(tmp_path / "c2"))
    assert torch.allclose(black.color, magenta.color, atol=1e-6)
    assert torch.allclose(black.gray, magenta.gray, atol=1e-6)
    assert torch.allclose(black.ab, magenta.ab, atol=1e-6)


# Unreadable files


def test_unreadable_files_are_skipped_with_a_warning(
    sprite_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (sprite_dir / "knight" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    (sprite_dir / "slime" / "empty.png").write_bytes(b"")
    with caplog.at_level(logging.WARNING, logger="memopainter.data.dataset"):
        data = load_training_data(sprite_dir, SIZE, "rgb")
    assert len(data) == 9
    assert not any(r.path.name in ("broken.png", "empty.png") for r in data.records)
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warned) == 2
    assert any("broken.png" in message for message in warned)
    assert any("empty.png" in message for message in warned)


def test_unreadable_files_go_to_on_unreadable_instead_of_the_log(
    sprite_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (sprite_dir / "knight" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    (sprite_dir / "slime" / "empty.png").write_bytes(b"")
    reported: list[ImageLoadError] = []
    with caplog.at_level(logging.WARNING, logger="memopainter.data.dataset"):
        data = load_training_data(sprite_dir, SIZE, "rgb", on_unreadable=reported.append)
    assert len(data) == 9
    assert [Path(error.path).name for error in reported] == ["broken.png", "empty.png"]
    assert reported[1].problem == "empty file (0 bytes)"
    assert not [r for r in caplog.records if r.levelno == logging.WARNING]  # reported once, by the caller


def test_a_folder_without_readable_images_is_an_error(tmp_path: Path) -> None:
    folder = tmp_path / "junk"
    folder.mkdir()
    (folder / "a.png").write_bytes(b"junk")
    with pytest.raises(ValueError, match="no readable images"):
        load_training_data(folder, SIZE, "rgb")


# The feature cache


def test_features_are_computed_once_then_read_from_the_cache(sprite_dir: Path, backbone, counted) -> None:
    first = load_training_data(sprite_dir, SIZE, "dist", backbone)
    assert counted["color"] == 9
    assert counted["backbone"] >= 1
    counted.update(backbone=0, color=0)
    second = load_training_data(sprite_dir, SIZE, "dist", backbone)
    assert counted == {"backbone": 0, "color": 0}
    assert torch.equal(first.color, second.color)
    assert torch.equal(first.query_features, second.query_features)


def test_the_cache_lives_under_memopainter_cache(sprite_dir: Path, cache_dir: Path) -> None:
    load_training_data(sprite_dir, SIZE, "rgb")
    names = [p.name for p in (cache_dir / "features").iterdir()]
    assert names == [f"color-rgb-v{FEATURE_VERSION}.safetensors"]


def test_the_cache_is_keyed_by_content_so_a_renamed_file_still_hits(
    sprite_dir: Path, backbone, counted
) -> None:
    load_training_data(sprite_dir, SIZE, "dist", backbone)
    (sprite_dir / "wizard").rename(sprite_dir / "mage")
    (sprite_dir / "knight" / "knight_0.png").rename(sprite_dir / "knight" / "hero.png")
    counted.update(backbone=0, color=0)
    data = load_training_data(sprite_dir, SIZE, "dist", backbone)
    assert counted == {"backbone": 0, "color": 0}
    assert data.class_names == ["knight", "mage", "slime"]


def test_changing_a_files_bytes_misses_the_cache_for_that_file_only(
    sprite_dir: Path, backbone, counted
) -> None:
    before = load_training_data(sprite_dir, SIZE, "dist", backbone)
    path = sprite_dir / "slime" / "slime_1.png"
    image = Image.open(path).convert("RGBA")
    ImageDraw.Draw(image).rectangle((0, 0, 9, 9), fill=(255, 255, 0, 255))
    image.save(path)
    counted.update(backbone=0, color=0)
    after = load_training_data(sprite_dir, SIZE, "dist", backbone)
    assert counted == {"backbone": 1, "color": 1}
    changed = [r.path.name for r in after.records].index("slime_1.png")
    assert not torch.equal(before.color[changed], after.color[changed])
    same = [i for i in range(9) if i != changed]
    assert torch.equal(before.color[same], after.color[same])


def test_a_corrupt_cache_file_is_rebuilt_with_a_warning(sprite_dir: Path, cache_dir: Path, counted) -> None:
    first = load_training_data(sprite_dir, SIZE, "rgb")
    cache_file = cache_dir / "features" / f"color-rgb-v{FEATURE_VERSION}.safetensors"
    cache_file.write_bytes(cache_file.read_bytes()[:100])
    counted.update(color=0)
    with pytest.warns(UserWarning, match="unreadable feature cache"):
        rebuilt = load_training_data(sprite_dir, SIZE, "rgb")
    assert counted["color"] == 9
    assert torch.equal(first.color, rebuilt.color)
    counted.update(color=0)
    load_training_data(sprite_dir, SIZE, "rgb")
    assert counted["color"] == 0  # the rebuilt file is whole again


def test_each_feature_kind_has_its_own_cache(sprite_dir: Path, counted) -> None:
    load_training_data(sprite_dir, SIZE, "rgb")
    counted.update(color=0)
    load_training_data(sprite_dir, SIZE, "dist")
    assert counted["color"] == 9


def test_duplicate_files_are_computed_once(sprite_dir: Path, counted) -> None:
    shutil.copy(sprite_dir / "knight" / "knight_0.png", sprite_dir / "knight" / "copy.png")
    data = load_training_data(sprite_dir, SIZE, "rgb")
    assert len(data) == 10
    assert counted["color"] == 9
    first, copy = ([r.path.name for r in data.records].index(n) for n in ("knight_0.png", "copy.png"))
    assert torch.equal(data.color[first], data.color[copy])
