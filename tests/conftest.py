"""Shared fixtures: a private feature cache, tiny run configs and a synthetic class-folder sprite dataset."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest
import torch
from PIL import Image, ImageDraw
from safetensors.torch import save_file

from memopainter.config import RunConfig
from memopainter.training.loop import train
from memopainter.training.steps import Batch

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


# The tiny networks of TINY_SETTINGS, minus the steps, size and batch that experiments set themselves.
TINY_NETWORKS = tuple(
    s for s in TINY_SETTINGS if s.split("=")[0] not in ("train.steps", "data.image_size", "train.batch_size")
)


def write_split(root: Path, classes: list[str], train: int = 2, test: int = 2) -> Path:
    """root/train/<class>/ and root/test/<class>/ of sprites at varied sizes, as `data split` writes them."""
    for name in classes:
        body, detail, shape, _ = SPRITE_CLASSES[name]
        for i in range(train + test):
            part = "train" if i < train else "test"
            path = root / part / name / f"{name}_{i}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            draw_sprite((24 + 6 * i, 40 - 3 * i), body, detail, shape).save(path)
    return root


def train_tiny(root: Path, settings: list[str] | tuple[str, ...]) -> Path:
    """Train a tiny run on 9 sprites of 3 classes under root, with its own feature cache; returns the run."""
    write_sprites(root / "data")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MEMOPAINTER_CACHE", str(root / "cache"))
        train(RunConfig().override(list(settings)), root / "data", root / "run", on_event=lambda _: None)
    return root / "run"


def run_cli(command: ModuleType, argv: list[str]) -> int:
    """Parse and run `memopainter ...` through one command module's register(); returns the exit status."""
    parser = argparse.ArgumentParser(prog="memopainter")
    command.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return args.run(args)


def run_experiment(argv: list[str]) -> int:
    """Parse and run `memopainter experiment ...`."""
    from memopainter.cli import experiment

    return run_cli(experiment, argv)


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


# torchvision.models.alexnet().features: the keys and shapes of its convolutions.
TORCHVISION_FEATURE_SHAPES = {
    "features.0.weight": (64, 3, 11, 11),
    "features.0.bias": (64,),
    "features.3.weight": (192, 64, 5, 5),
    "features.3.bias": (192,),
    "features.6.weight": (384, 192, 3, 3),
    "features.6.bias": (384,),
    "features.8.weight": (256, 384, 3, 3),
    "features.8.bias": (256,),
    "features.10.weight": (256, 256, 3, 3),
    "features.10.bias": (256,),
}
# lpips 0.1.4's weights/v0.1/alex.pth, as read out of the wheel.
LPIPS_HEAD_SHAPES = {
    "lin0.model.1.weight": (1, 64, 1, 1),
    "lin1.model.1.weight": (1, 192, 1, 1),
    "lin2.model.1.weight": (1, 384, 1, 1),
    "lin3.model.1.weight": (1, 256, 1, 1),
    "lin4.model.1.weight": (1, 256, 1, 1),
}


@pytest.fixture(scope="session")
def weight_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(alexnet, heads): a seeded random AlexNet with torchvision's keys, random heads with lpips's."""
    folder = tmp_path_factory.mktemp("lpips-weights")
    generator = torch.Generator().manual_seed(0)
    alexnet = {
        key: torch.randn(shape, generator=generator) * (0.05 if len(shape) > 1 else 0.1)
        for key, shape in TORCHVISION_FEATURE_SHAPES.items()
    }
    # The real file also holds the classifier, which LPIPS does not use (small stand-ins here).
    alexnet["classifier.1.weight"] = torch.zeros(4, 9)
    alexnet["classifier.6.bias"] = torch.zeros(4)
    alexnet_path = folder / "random-alexnet.safetensors"  # a file of unknown origin: safetensors only
    save_file(alexnet, alexnet_path)
    # LPIPS's heads are non-negative channel weights.
    heads = {key: torch.rand(shape, generator=generator) for key, shape in LPIPS_HEAD_SHAPES.items()}
    heads_path = folder / "random-heads.safetensors"
    save_file(heads, heads_path)
    return alexnet_path, heads_path


def bins_batch(seed: int) -> tuple[Batch, torch.Tensor, torch.Tensor]:
    """A random batch of 4 at 32 px for one bins-head step: the batch, its condition (4, 313) and bin
    weights (313,)."""
    draws = torch.Generator().manual_seed(seed)
    gray = torch.rand(4, 1, 32, 32, generator=draws)  # (B, 1, S, S)
    ab = torch.rand(4, 2, 32, 32, generator=draws) * 0.6 - 0.3  # (B, 2, S, S) in ab / 110
    color = torch.rand(4, 313, generator=draws)
    cond = color / color.sum(1, keepdim=True)  # (B, 313)
    batch = Batch(None, color, torch.arange(4), torch.full((4,), -1), gray, ab)
    return batch, cond, torch.rand(313, generator=draws) + 0.5


def metric_lines(run_dir: Path) -> list[dict]:
    """The parsed lines of a run's metrics.jsonl."""
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text(encoding="utf-8").splitlines()]
