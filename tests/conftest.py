"""Shared fixtures: a private feature cache, tiny run configs and a synthetic class-folder sprite dataset."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from PIL import Image, ImageDraw

from memopainter.config import RunConfig

# Each class: its flat body and detail colors, its shape, and the (width, height) of its frames. Sizes vary
# within a class and aspect ratios run from tall to wide, as sprite sheets do.
SPRITE_CLASSES = {
    "knight": ((200, 30, 40), (240, 200, 40), "ellipse", [(24, 40), (40, 64), (18, 30)]),
    "slime": ((40, 170, 60), (20, 80, 30), "rectangle", [(48, 32), (72, 40), (30, 20)]),
    "wizard": ((70, 60, 200), (230, 230, 250), "triangle", [(36, 36), (60, 90), (100, 50)]),
    "bat": ((90, 40, 110), (250, 120, 20), "ellipse", [(64, 24), (50, 20), (80, 36)]),
    "golem": ((130, 110, 90), (60, 200, 220), "rectangle", [(40, 56), (28, 44), (56, 80)]),
}
DEFAULT_CLASSES = ["knight", "slime", "wizard"]


def draw_sprite(
    size: tuple[int, int], body: tuple[int, int, int], detail: tuple[int, int, int], shape: str
) -> Image.Image:
    """An RGBA sprite: a flat-colored shape with a detail stripe on a fully transparent background."""
    width, height = size
    image = Image.new("RGBA", size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    box = (width // 8, height // 8, width - 1 - width // 8, height - 1 - height // 8)
    if shape == "ellipse":
        draw.ellipse(box, fill=(*body, 255))
    elif shape == "rectangle":
        draw.rectangle(box, fill=(*body, 255))
    else:
        draw.polygon([(width // 2, box[1]), (box[2], box[3]), (box[0], box[3])], fill=(*body, 255))
    top = height // 2
    stripe = (width // 3, top, width - 1 - width // 3, top + max(1, height // 10))
    draw.rectangle(stripe, fill=(*detail, 255))
    return image


def write_sprites(root: Path, per_class: int | None = None, classes: list[str] | None = None) -> list[Path]:
    """Write sprites as root/<class>/<class>_<i>.png (DEFAULT_CLASSES unless named); returns sorted files."""
    written = []
    for name in classes or DEFAULT_CLASSES:
        body, detail, shape, sizes = SPRITE_CLASSES[name]
        for i, size in enumerate(sizes[:per_class]):
            path = root / name / f"{name}_{i}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            draw_sprite(size, body, detail, shape).save(path)
            written.append(path)
    return sorted(written)


TINY_SETTINGS = (
    "memory.backbone=tiny",
    "memory.key_dim=16",
    "model.base_channels=8",
    "model.mlp_hidden=16",
    "data.image_size=32",
    "train.batch_size=4",
    "train.steps=4",
    "train.sample_every=2",
    "train.checkpoint_every=2",
)


@pytest.fixture
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """MEMOPAINTER_CACHE pointed at a fresh folder, so no test reads or writes the user's cache."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("MEMOPAINTER_CACHE", str(folder))
    return folder


@pytest.fixture(scope="session")
def sprite_writer() -> Callable[..., list[Path]]:
    """write_sprites(root, per_class=None, classes=None): writes a class-folder sprite dataset under root."""
    return write_sprites


@pytest.fixture
def sprite_dir(tmp_path: Path) -> Path:
    """A class-folder dataset: 3 classes (knight, slime, wizard) of 3 RGBA sprites each, 9 images in all."""
    root = tmp_path / "sprites"
    write_sprites(root)
    return root


@pytest.fixture(scope="session")
def tiny_settings() -> tuple[str, ...]:
    """`--set` strings for a run small enough for a test: tiny backbone, 32 px, 8 channels, 4 steps of 4."""
    return TINY_SETTINGS


@pytest.fixture
def tiny_config() -> RunConfig:
    """The RunConfig of `tiny_settings`, fresh for each test."""
    return RunConfig().override(list(TINY_SETTINGS))


@pytest.fixture(scope="module")
def one_thread():
    """One intra-op thread: on a shared machine, waiting for a busy second core costs more than it gives."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
