"""Line-art mode end to end: training on drawn or extracted line art, the checkpoint that says so, coloring
drawings at full resolution (crisp dark lines, filled regions, alpha), evaluation against the colors, the
split that carries line art, and the experiment against no memory and the nearest reference.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TINY_NETWORKS, run_experiment, train_tiny, write_split
from PIL import Image, ImageDraw

from memopainter.cli import colorize as colorize_cli
from memopainter.cli import data as data_cli
from memopainter.config import ConfigError, RunConfig
from memopainter.core.model import load_memopainter
from memopainter.data.dataset import image_color_feature, load_training_data
from memopainter.data.images import load_image
from memopainter.data.lineart import lineart_input
from memopainter.data.preprocess import network_input
from memopainter.evaluation.evaluate import evaluate
from memopainter.experiments.upsampling import upsampling_experiment
from memopainter.inference import Colorizer

pytestmark = pytest.mark.usefixtures("cache_dir", "one_thread")
LINEART = ("data.input=lineart",)


def drawing(size: int = 48) -> Image.Image:
    """Black line art on transparent paper: a closed ring with a stroke across it."""
    image = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    draw.ellipse((6, 6, size - 7, size - 7), outline=(0, 0, 0, 255), width=2)
    draw.line((6, size // 2, size - 7, size // 2), fill=(0, 0, 0, 255), width=2)
    return image


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory, tiny_settings: tuple[str, ...]) -> Path:
    """A tiny line-art run with memory: 8 steps of 4 over 9 sprites, their lines extracted."""
    return train_tiny(tmp_path_factory.mktemp("lineart"), [*tiny_settings, *LINEART, "train.steps=8"])


@pytest.fixture(scope="module")
def colorizer(run_dir: Path) -> Colorizer:
    return Colorizer.from_pretrained(run_dir)


def test_line_art_needs_the_bins_head_and_line_art_folders_need_line_art_mode() -> None:
    with pytest.raises(ConfigError, match="model.head"):
        RunConfig().override(["data.input=lineart", "model.head=ab"])
    with pytest.raises(ConfigError, match="data.lineart"):
        RunConfig().override(["data.lineart=lines"])
    with pytest.raises(ConfigError, match="data.input"):
        RunConfig().override(["data.input=sketch"])
    assert RunConfig().data.input == "gray"
    assert RunConfig.from_dict({"data": {"image_size": 64}}).data.input == "gray"  # saved before the key


def test_the_checkpoint_records_line_art_mode_and_a_lightness_channel(run_dir: Path) -> None:
    model = load_memopainter(run_dir)
    assert model.config.data.input == "lineart"
    assert model.generator.lightness and model.generator.config()["lightness"]
    gray = torch.rand(2, 1, 32, 32)
    with torch.no_grad():
        out = model.generator.eval()(gray, model.memory.values[:2])
    logits, lightness = model.generator.split(out)
    assert logits.shape == (2, 313, 32, 32) and lightness.shape == (2, 1, 32, 32)
    assert float(lightness.min()) >= 0 and float(lightness.max()) <= 1
    metrics = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert all(m["lightness_l1"] >= 0 for m in metrics)


def test_a_drawing_is_colored_inside_its_lines_with_its_lines_kept_dark(colorizer: Colorizer) -> None:
    art = drawing()
    (colored,) = colorizer(art)
    # Drawn line art is colored on white paper: its alpha is the ink's, not the figure's.
    assert colored.size == art.size and colored.mode == "RGB"
    pixels = np.asarray(colored).astype(int)
    ink = np.asarray(art)[:, :, 3] >= 128
    assert pixels[ink].max() <= 60  # multiplied by black ink: the lines stay black
    assert pixels[~ink].min() > 60  # and the paper between them takes the fills
    prepared = colorizer.prepare(*load_image_pair(art))
    assert not prepared.extracted and prepared.alpha is None
    sprite = Image.new("RGBA", (40, 30), (0, 0, 0, 0))
    ImageDraw.Draw(sprite).rectangle((5, 5, 30, 20), fill=(200, 40, 40, 255))
    (out,) = colorizer(sprite)  # not line art: its lines are extracted and its alpha kept
    assert out.mode == "RGBA" and np.array_equal(np.asarray(out)[:, :, 3], np.asarray(sprite)[:, :, 3])


def test_a_color_image_is_colored_from_its_extracted_lines_and_says_so(
    colorizer: Colorizer, sprite_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    sprite = sorted(sprite_dir.rglob("*.png"))[0]
    prepared = colorizer.prepare(*load_image(sprite))
    assert prepared.extracted
    lines, _ = lineart_input(*load_image(sprite))
    again = colorizer.prepare(lines, load_image(sprite)[1]).lightness  # the lines, now taken as line art
    torch.testing.assert_close(prepared.lightness, again, atol=1e-3, rtol=0)
    plain = tmp_path / "drawing.png"
    drawing().save(plain)
    parser = argparse.ArgumentParser(prog="memopainter")
    colorize_cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(
        ["colorize", str(colorizer.path), str(sprite), str(plain), "-o", str(tmp_path / "o")]
    )
    assert args.run(args) == 0
    err = capsys.readouterr().err
    assert f"{sprite}: not line art; colored from its extracted lines" in err
    assert "drawing.png: not line art" not in err


def test_the_paper_around_a_drawing_keeps_its_own_colors_in_the_region_mode() -> None:
    from memopainter.inference.regions import region_mean_ab

    lightness = torch.full((12, 12), 100.0)
    lightness[2:10, 2] = lightness[2:10, 9] = lightness[2, 2:10] = lightness[9, 2:10] = 0.0  # a closed ring
    ab = torch.randn(3, 12, 12, generator=torch.Generator().manual_seed(0))
    kept = region_mean_ab(ab, lightness, None, keep_border=True)
    inside = (slice(None), slice(3, 9), slice(3, 9))
    assert torch.allclose(kept[inside], ab[inside].mean((1, 2))[:, None, None].expand(3, 6, 6))
    assert torch.equal(kept[:, 0], ab[:, 0]) and torch.equal(kept[:, :, 11], ab[:, :, 11])  # the paper
    merged = region_mean_ab(ab, lightness, None)
    assert torch.allclose(merged[:, 0], merged[:, 0, :1].expand(3, 12))  # one mean over all the paper


def test_top_k_and_palettes_work_on_line_art(run_dir: Path) -> None:
    colorizer = Colorizer.from_pretrained(run_dir)
    with torch.no_grad():  # 8 steps leave the condition's last layer near its zero start: make it matter
        colorizer.model.generator.mlp[-1].weight.normal_(0, 1, generator=torch.Generator().manual_seed(0))
    first, second = colorizer(drawing(), top_k=2)
    assert first.size == second.size == (48, 48)
    (red,) = colorizer(drawing(), palette="#d02020")
    (blue,) = colorizer(drawing(), palette="#2040d0")
    assert not np.array_equal(np.asarray(red), np.asarray(blue))


def test_drawn_line_art_is_used_where_a_folder_has_it(tmp_path: Path, sprite_dir: Path) -> None:
    lines = tmp_path / "lines"
    chosen = sorted(sprite_dir.rglob("*.png"))[0]
    target = lines / chosen.relative_to(sprite_dir)
    target.parent.mkdir(parents=True)
    drawing(48).save(target)
    with pytest.raises(ValueError, match="line art of 48x48 px for .* of a different size"):
        load_training_data(sprite_dir, 32, "dist", input_mode="lineart", lineart_dir=lines)
    drawing(48).resize(Image.open(chosen).size).save(target)
    data = load_training_data(sprite_dir, 32, "dist", input_mode="lineart", lineart_dir=lines)
    index = [r.path for r in data.records].index(chosen)
    rgb, alpha = load_image(chosen)
    drawn = network_input(lineart_input(*load_image(target))[0], None, 32)[0]  # on opaque paper
    extracted = network_input(lineart_input(rgb, alpha)[0], alpha, 32)[0]
    assert torch.equal(data.gray[index], drawn) and not torch.equal(drawn, extracted)
    other = (index + 1) % len(data)
    rgb, alpha = load_image(data.records[other].path)
    assert torch.equal(data.gray[other], network_input(lineart_input(rgb, alpha)[0], alpha, 32)[0])
    assert torch.equal(data.lightness[index], network_input(*load_image(chosen), 32)[0])
    with pytest.raises(ValueError, match="not a folder of line art"):
        load_training_data(sprite_dir, 32, "dist", input_mode="lineart", lineart_dir=tmp_path / "none")


def draw_first(files: list[Path], root: Path, lines: Path) -> Path:
    """A folder of line art holding a drawing, of its size, for the first of `files` only."""
    target = lines / files[0].relative_to(root)
    target.parent.mkdir(parents=True)
    drawing().resize(Image.open(files[0]).size).save(target)
    return lines


def test_evaluation_colors_drawings_and_scores_them_against_the_colors(
    colorizer: Colorizer, tmp_path: Path, sprite_dir: Path
) -> None:
    files = sorted(sprite_dir.rglob("*.png"))
    lines = draw_first(files, sprite_dir, tmp_path / "lines")
    result = evaluate(colorizer, sprite_dir, lineart_dir=lines)
    assert not result.failures and len(result.per_image) == len(files)
    assert {s.path for s in result.per_image} == {f.relative_to(sprite_dir).as_posix() for f in files}
    plain = evaluate(colorizer, sprite_dir)
    scores = {s.path: s.metrics.delta_e2000 for s in plain.per_image}
    drawn = {s.path: s.metrics.delta_e2000 for s in result.per_image}
    name = files[0].relative_to(sprite_dir).as_posix()
    assert drawn[name] != scores[name]  # colored from the drawing, not from the sprite's own lines
    assert all(drawn[p] == scores[p] for p in drawn if p != name)


def test_evaluated_animations_are_colored_from_their_drawings_too(
    colorizer: Colorizer, tmp_path: Path, sprite_dir: Path
) -> None:
    sprite = sorted(sprite_dir.rglob("*.png"))[0]
    test_dir, lines = tmp_path / "test", tmp_path / "lines"
    for folder in (test_dir / "hero", lines / "hero"):
        folder.mkdir(parents=True)
    for frame in (1, 2, 3):
        (test_dir / "hero" / f"walk_{frame}.png").write_bytes(sprite.read_bytes())
    drawing().resize(Image.open(sprite).size).save(lines / "hero" / "walk_2.png")
    drawing().resize((50, 50)).save(lines / "hero" / "walk_3.png")
    plain = evaluate(colorizer, test_dir, sequences=True)
    drawn = evaluate(colorizer, test_dir, sequences=True, lineart_dir=lines)
    before = {s.path: s.metrics.delta_e2000 for s in plain.per_image}
    after = {s.path: s.metrics.delta_e2000 for s in drawn.per_image}
    assert set(before) == {"hero/walk_1.png", "hero/walk_2.png", "hero/walk_3.png"}
    assert (
        after["hero/walk_2.png"] != before["hero/walk_2.png"]
    )  # from the drawing, scored against the sprite
    assert [(f.path, f.error.split(" is ")[0]) for f in drawn.failures] == [
        ("hero/walk_3.png", f"its line art {lines / 'hero' / 'walk_3.png'}")
    ]


def test_a_frame_with_nothing_opaque_keeps_its_alpha(colorizer: Colorizer) -> None:
    blank = np.zeros((20, 16, 4), dtype=np.uint8)  # a blank frame of an animation
    faint = np.full((20, 16, 4), 200, dtype=np.uint8)
    faint[..., 3] = 100  # a sprite at 40% opacity
    for image in (blank, faint):
        (colored,) = colorizer(image)
        assert colored.mode == "RGBA" and np.array_equal(np.asarray(colored)[..., 3], image[..., 3])


def test_a_bad_or_missized_drawing_fails_its_image_naming_the_drawing(
    colorizer: Colorizer, tmp_path: Path, sprite_dir: Path
) -> None:
    files = sorted(sprite_dir.rglob("*.png"))
    lines = tmp_path / "lines"
    corrupt, missized = (lines / f.relative_to(sprite_dir) for f in files[:2])
    corrupt.parent.mkdir(parents=True)
    corrupt.write_bytes(b"junk")
    drawing().resize((50, 50)).save(missized)
    result = evaluate(colorizer, sprite_dir, lineart_dir=lines)
    problems = {failure.path: failure.error for failure in result.failures}
    assert len(problems) == 2 and len(result.per_image) == len(files) - 2
    first, second = (f.relative_to(sprite_dir).as_posix() for f in files[:2])
    assert problems[first].startswith(f"its line art {corrupt}: ")
    width, height = Image.open(files[1]).size
    assert problems[second].startswith(f"its line art {missized} is 50x50, the image {width}x{height}")


def test_the_oracle_conditions_a_drawing_on_its_test_images_colors(
    colorizer: Colorizer, tmp_path: Path, sprite_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = sorted(sprite_dir.rglob("*.png"))
    lines = draw_first(files, sprite_dir, tmp_path / "lines")
    seen = []
    predict = colorizer.predict

    def spy(prepared, top_k=1, palette=None, conditions=None, slots=None):
        seen.append(conditions)
        return predict(prepared, top_k, palette, conditions, slots)

    monkeypatch.setattr(colorizer, "predict", spy)
    evaluate(colorizer, sprite_dir, oracle=True, lineart_dir=lines, batch_size=len(files))
    expected = torch.stack([image_color_feature(*load_image(f), colorizer.feature) for f in files])
    assert torch.equal(seen[0], expected)


def test_evaluate_refuses_a_line_art_folder_that_is_not_there(
    run_dir: Path, sprite_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from memopainter.cli import evaluate as evaluate_cli

    parser = argparse.ArgumentParser(prog="memopainter")
    evaluate_cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["evaluate", str(run_dir), str(sprite_dir), "--lineart", str(tmp_path / "none")])
    assert args.run(args) == 2
    assert f"--lineart {tmp_path / 'none'}: not a folder" in capsys.readouterr().err


def test_a_split_carries_the_matching_line_art(tmp_path: Path, sprite_dir: Path) -> None:
    lines = tmp_path / "lines"
    for path in sorted(sprite_dir.rglob("*.png"))[:4]:
        target = lines / path.relative_to(sprite_dir)
        target.parent.mkdir(parents=True, exist_ok=True)
        drawing().save(target)
    dest = tmp_path / "split"
    parser = argparse.ArgumentParser(prog="memopainter")
    data_cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(
        ["data", "split", str(sprite_dir), str(dest), "--shots", "1", "--lineart", str(lines)]
    )
    assert args.run(args) == 0
    copied = sorted(p.relative_to(dest / "lineart") for p in (dest / "lineart").rglob("*.png"))
    assert len(copied) == 4
    for relative in copied:
        assert (dest / relative).is_file()  # beside the split file of the same part and name
    manifest = json.loads((dest / "dataset.json").read_text())
    assert manifest["lineart"]["copied"] == 4 and manifest["lineart"]["missing"] == 5


def test_the_experiment_pairs_memory_with_no_memory_and_the_nearest_reference(tmp_path: Path) -> None:
    split = write_split(tmp_path / "split", ["knight", "slime", "wizard"])
    out = tmp_path / "out"
    args = ["experiment", "lineart", str(split), "--out", str(out), "--steps", "2"]
    args += ["--image-size", "32", "--batch-size", "4", "--top-k", "2"]
    for setting in TINY_NETWORKS:
        args += ["--set", setting]
    assert run_experiment(args) == 0
    report = json.loads((out / "lineart.json").read_text())
    assert [m["method"] for m in report["methods"]] == ["memopainter-bins", "cic"]
    assert all(m["config"]["data"]["input"] == "lineart" for m in report["methods"])
    assert report["nearest_reference"]["images"] == 6
    for baseline in ("cic", "nearest-reference"):
        assert report["paired_memory_vs"][baseline]["images"] == 6
    table = (out / "lineart.md").read_text()
    assert "Nearest reference" in table and "MemoPainter minus" in table
    assert Image.open(out / "lineart_grid.png").size[0] > 0


def load_image_pair(image: Image.Image) -> tuple[torch.Tensor, torch.Tensor | None]:
    from memopainter.inference.inputs import image_tensors

    return image_tensors(image)


def test_the_upsampling_experiment_refuses_a_line_art_model(run_dir: Path, sprite_dir: Path) -> None:
    with pytest.raises(ValueError, match="a line-art model; the upsampling experiment measures gray-input"):
        upsampling_experiment(run_dir, sprite_dir, [1], say=lambda _: None)
