"""Specification of inference: the Python API and `memopainter colorize`.

Outputs keep the input (size, aspect ratio, alpha, EXIF orientation, full-resolution lightness); any image
form is accepted; top-k alternatives, palettes and the no-memory ablation behave as documented; the command
mirrors its inputs, refuses to clobber files and reports failures in a summary and its exit status.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import train_tiny
from PIL import Image

from memopainter.cli import colorize as colorize_cli
from memopainter.color import lab_to_rgb, rgb_to_gray, rgb_to_lab, soft_encode
from memopainter.color.features import palette_condition
from memopainter.core.checkpoint import RESERVED_META_KEYS, load_checkpoint, save_checkpoint
from memopainter.data.images import pil_to_tensors
from memopainter.inference import Colorizer, batch, parse_palette
from memopainter.inference.fullres import into_gamut, prepare_image, recombine, region_weights
from memopainter.networks.backbones import WeightsError

pytestmark = pytest.mark.usefixtures("cache_dir", "one_thread")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory, sprite_writer, tiny_settings: list[str]) -> Path:
    """A tiny run with memory (dist feature): 12 steps of 4 over 9 sprites."""
    return train_tiny(tmp_path_factory.mktemp("memory"), [*tiny_settings, "train.steps=12"])


@pytest.fixture(scope="module")
def no_memory_dir(tmp_path_factory: pytest.TempPathFactory, sprite_writer, tiny_settings: list[str]) -> Path:
    """A tiny run of the no-memory ablation."""
    settings = [*tiny_settings, "memory.enabled=false"]
    return train_tiny(tmp_path_factory.mktemp("no-memory"), settings)


@pytest.fixture(scope="module")
def colorizer(run_dir: Path):
    """The tiny run, loaded for inference."""
    return Colorizer.from_pretrained(run_dir)


def cli(*args: object) -> int:
    """Run `memopainter colorize ...` through its own sub-parser; returns the exit status."""
    parser = argparse.ArgumentParser(prog="memopainter")
    colorize_cli.register(parser.add_subparsers(dest="command"))
    parsed = parser.parse_args(["colorize", *map(str, args)])
    return parsed.run(parsed)


def photo(width: int, height: int, seed: int = 0, mode: str = "RGB") -> Image.Image:
    """A seeded random color image of the given size and mode (RGB or RGBA)."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (height, width, len(mode)), dtype=np.uint8)
    return Image.fromarray(pixels, mode=mode)


def lightness(image: Image.Image) -> np.ndarray:
    """CIE L (H, W) of an image's color channels."""
    rgb, _ = pil_to_tensors(image)
    return rgb_to_lab(rgb)[0].numpy()


# --- what the output keeps of the input -------------------------------------------------------------------


def test_odd_sized_rgba_keeps_its_size_and_alpha_byte_for_byte(colorizer) -> None:
    image = photo(37, 23, mode="RGBA")
    alpha = np.asarray(image)[..., 3]
    (out,) = colorizer(image)
    assert out.mode == "RGBA"
    assert out.size == (37, 23)
    np.testing.assert_array_equal(np.asarray(out)[..., 3], alpha)


@pytest.mark.parametrize("size", [(90, 20), (20, 90), (32, 32), (1, 1)])
def test_output_has_the_input_size_whatever_the_aspect_ratio(colorizer, size: tuple[int, int]) -> None:
    (out,) = colorizer(photo(*size))
    assert out.mode == "RGB"
    assert out.size == size


def test_output_lightness_is_the_inputs_at_full_resolution(colorizer) -> None:
    # A 1-pixel checkerboard: far finer than the 32 px network can draw, so only the recombination with the
    # input's own L can keep it; out-of-gamut colors are desaturated at constant L, not clipped.
    bright = np.indices((41, 47)).sum(0) % 2 == 1
    board = np.where(bright, 200, 50).astype(np.uint8)
    (out,) = colorizer(Image.fromarray(board, mode="L"))
    difference = np.abs(lightness(out) - lightness(Image.fromarray(board, mode="L")))
    assert out.size == (47, 41)
    assert difference.max() < 0.6  # 8-bit rounding of the output


def test_sixteen_bit_gray_png_is_colorized_with_its_full_lightness(colorizer, tmp_path: Path) -> None:
    ramp = np.linspace(0, 65535, 50 * 30).reshape(30, 50).astype(np.uint16)
    source = tmp_path / "in" / "ramp16.png"
    source.parent.mkdir()
    Image.fromarray(ramp).save(source)  # mode I;16
    assert cli(colorizer.path, source, "-o", tmp_path / "out") == 0
    out = Image.open(tmp_path / "out" / "ramp16.png")
    expected = rgb_to_lab(torch.from_numpy(ramp / 65535.0).float().expand(3, -1, -1))[0].numpy()
    assert out.size == (50, 30)
    assert np.abs(lightness(out) - expected).max() < 0.6  # 8-bit rounding of the output


def test_exif_rotated_jpeg_comes_out_upright(colorizer, tmp_path: Path) -> None:
    stored = np.full((20, 40, 3), 230, dtype=np.uint8)  # 40 wide, 20 high as stored
    stored[:, :20] = 20  # dark left half
    image = Image.fromarray(stored)
    exif = image.getexif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    source = tmp_path / "in" / "rotated.jpg"
    source.parent.mkdir()
    image.save(source, exif=exif, quality=95)
    assert cli(colorizer.path, source, "-o", tmp_path / "out") == 0
    out = Image.open(tmp_path / "out" / "rotated.png")
    L = lightness(out)
    assert out.size == (20, 40)  # upright: 20 wide, 40 high
    assert L[:20].mean() < 30 < 80 < L[20:].mean()  # the stored left half is now on top


# --- image forms the API accepts --------------------------------------------------------------------------


def test_pil_numpy_and_tensor_forms_of_one_image_give_identical_results(colorizer) -> None:
    image = photo(29, 17, seed=3, mode="RGBA")
    array = np.array(image)
    forms = [
        image,
        array,
        array.astype(np.float32) / 255.0,
        torch.from_numpy(array).permute(2, 0, 1).float() / 255.0,
    ]
    results = [np.asarray(colorizer(form)[0]) for form in forms]
    for result in results[1:]:
        np.testing.assert_array_equal(result, results[0])


def test_gray_forms_of_one_image_give_identical_rgb_results(colorizer) -> None:
    gray = np.array(photo(19, 11, seed=4).convert("L"))
    forms = [
        Image.fromarray(gray, mode="L"),
        gray,
        gray.astype(np.uint16) * 257,  # the same gray on the 16-bit scale
        torch.from_numpy(gray)[None].float() / 255.0,
    ]
    results = [colorizer(form)[0] for form in forms]
    assert {r.mode for r in results} == {"RGB"}
    for result in results[1:]:
        assert np.abs(np.asarray(result, dtype=int) - np.asarray(results[0], dtype=int)).max() <= 1


def test_a_color_input_is_colorized_from_its_lightness_only(colorizer) -> None:
    image = photo(24, 24, seed=5)
    gray = rgb_to_gray(pil_to_tensors(image)[0])  # (3, H, W), the same lightness with a = b = 0
    recolored, from_gray = colorizer(image)[0], colorizer(gray)[0]
    assert np.abs(np.asarray(recolored, dtype=int) - np.asarray(from_gray, dtype=int)).max() <= 1


@pytest.mark.parametrize(
    ("image", "error"),
    [
        (np.zeros((4, 4, 2), dtype=np.uint8), "shaped"),
        (np.zeros((4, 4), dtype=np.int64), "dtype"),
        (np.full((4, 4), 1.5, dtype=np.float32), r"\[0, 1\]"),
        (torch.zeros(2, 4, 4), "shaped"),
        (torch.zeros(3, 4, 4, dtype=torch.uint8), "floats"),
        (torch.full((3, 4, 4), -0.5), r"\[0, 1\]"),
        ([[0, 1], [1, 0]], "got list"),
    ],
)
def test_unsupported_images_are_refused_with_a_clear_error(colorizer, image, error: str) -> None:
    with pytest.raises((ValueError, TypeError), match=error):
        colorizer(image)


def test_batched_colorization_matches_one_image_at_a_time(colorizer) -> None:
    images = [photo(30, 20, seed=i) for i in range(3)]
    batched = _colorize_all(colorizer, images, top_k=2)
    for image, results in zip(images, batched, strict=True):
        single = colorizer(image, top_k=2)
        for a, b in zip(results, single, strict=True):
            assert np.abs(np.asarray(a, dtype=int) - np.asarray(b, dtype=int)).max() <= 1


def test_colorize_each_yields_failures_in_their_input_places(colorizer, tmp_path: Path) -> None:
    good = [photo(12, 10, seed=i) for i in range(3)]
    unreadable = np.zeros((8, 8, 2), dtype=np.uint8)  # two channels: no image
    wrong_type = torch.full((3, 8, 8), 128, dtype=torch.uint8)  # tensors must hold floats in [0, 1]
    images = [good[0], unreadable, good[1], tmp_path / "missing.png", wrong_type, good[2]]
    results = list(colorizer.colorize_each(images, batch_size=8))  # one batch holds them all
    kinds = ["Colored", "Failed", "Colored", "Failed", "Failed", "Colored"]
    assert [type(r).__name__ for r in results] == kinds
    assert "must hold floats" in str(results[4].error)
    assert all(r.source is image for r, image in zip(results, images, strict=True))
    smaller = list(colorizer.colorize_each(images, batch_size=2))  # failures at a batch's start and end
    assert all(r.source is image for r, image in zip(smaller, images, strict=True))


def test_own_conditions_stay_with_their_images_when_one_fails_to_prepare(colorizer) -> None:
    def own_color(source: object, rgb: torch.Tensor, alpha: torch.Tensor | None) -> torch.Tensor:
        return palette_condition(rgb.mean((1, 2))[None], colorizer.feature)  # (V,)

    images = [photo(12, 10, seed=0), photo(300, 2, seed=1), photo(12, 10, seed=2)]  # 150:1 is refused late
    results = list(colorizer.colorize_each(images, condition=own_color))
    assert [type(r).__name__ for r in results] == ["Colored", "Failed", "Colored"]
    for image, result in zip(images[::2], results[::2], strict=True):
        (alone,) = colorizer.colorize_each([image], condition=own_color)
        assert np.array_equal(np.asarray(result.images[0]), np.asarray(alone.images[0]))


# --- full-resolution recombination ------------------------------------------------------------------------


@pytest.mark.parametrize(("length", "side", "size"), [(23, 37, 8), (37, 37, 8), (5, 300, 32), (64, 64, 64)])
def test_region_weights_equal_bilinear_upsampling_then_cropping(length: int, side: int, size: int) -> None:
    offset = (side - length) // 2
    signal = torch.rand(1, 1, size, size, generator=torch.Generator().manual_seed(0))
    full = F.interpolate(signal, size=(side, side), mode="bilinear", align_corners=False)[0, 0]
    rows = region_weights(length, offset, side, size) @ signal[0, 0]  # (length, size)
    expected = full[offset : offset + length]  # rows of the region, every column still at size
    cols = region_weights(side, 0, side, size)
    assert torch.allclose(rows @ cols.T, expected, atol=1e-5)
    assert torch.allclose(region_weights(length, offset, side, size).sum(1), torch.ones(length))


def test_recombining_zero_ab_returns_the_inputs_gray() -> None:
    image = photo(13, 9, seed=6, mode="RGBA")
    rgb, alpha = pil_to_tensors(image)
    prepared = prepare_image(rgb, alpha, 16, None)
    out = recombine(prepared, torch.zeros(2, 16, 16))
    pixels = np.asarray(out).astype(int)
    assert np.abs(pixels[..., 0] - pixels[..., 2]).max() <= 1  # neutral: r = g = b
    assert np.abs(lightness(out) - rgb_to_lab(rgb)[0].numpy()).max() < 0.6


def test_out_of_gamut_colors_keep_their_lightness_and_in_gamut_colors_are_untouched() -> None:
    g = torch.Generator().manual_seed(0)
    L = torch.rand(1, 2000, 1, generator=g) * 100
    ab = (torch.rand(2, 2000, 1, generator=g) * 2 - 1) * 128
    raw = lab_to_rgb(torch.cat([L, ab]), clip=False)  # (3, 2000, 1), most of it outside [0, 1]
    mapped = into_gamut(raw)
    inside = ((raw >= 0) & (raw <= 1)).all(0)
    assert 0.0 <= float(mapped.min()) and float(mapped.max()) <= 1.0
    assert float((rgb_to_lab(mapped)[0] - L[0]).abs().max()) < 1e-3
    assert torch.equal(mapped[:, inside], raw[:, inside])
    assert float((rgb_to_lab(raw.clamp(0, 1))[0] - L[0]).abs().max()) > 10  # what clipping would do


# --- top-k, palettes, and the no-memory model -------------------------------------------------------------


def test_top_k_returns_the_colorings_of_the_k_best_slots_in_order(colorizer) -> None:
    image = photo(21, 34, seed=7, mode="RGBA")
    rgb, alpha = pil_to_tensors(image)
    prediction = colorizer.predict([colorizer.prepare(rgb, alpha)], top_k=3)
    assert prediction.slots.shape == (1, 3)
    assert bool((prediction.scores[0, :-1] >= prediction.scores[0, 1:]).all())  # best first
    results = colorizer(image, top_k=3)
    assert len(results) == 3
    assert all(r.size == (21, 34) for r in results)


def test_top_k_past_the_written_slots_is_refused(colorizer) -> None:
    filled = colorizer.model.memory.num_filled
    with pytest.raises(ValueError, match=f"the {filled} written memory slots"):
        colorizer(photo(8, 8), top_k=filled + 1)


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("#ff00", "'#ff00' is not a palette color"),
        ("#gg0000", "'#gg0000' is not a palette color"),
        ("#ff0000,", "'' is not a palette color"),
        (",".join(["#000000"] * 11), "1 to 10 colors, got 11"),
    ],
)
def test_bad_palettes_are_refused_with_a_clear_error(text: str, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        parse_palette(text)


def test_palettes_parse_to_colors_in_the_unit_range() -> None:
    colors = parse_palette(" #FF8000, 0000ff ")
    expected = torch.tensor([[1.0, 128 / 255, 0.0], [0.0, 0.0, 1.0]])
    assert torch.allclose(colors, expected)
    assert torch.equal(parse_palette(["#ff8000", "#0000ff"]), colors)


def test_rgb_palette_condition_repeats_the_colors_in_order_to_ten() -> None:
    red, green, blue = [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]
    condition = palette_condition(torch.tensor([red, green, blue]), "rgb")
    expected = torch.tensor([red, green, blue] * 3 + [red]).reshape(30)
    assert torch.equal(condition, expected)


def test_dist_palette_condition_is_the_distribution_of_equal_areas_of_the_colors() -> None:
    condition = palette_condition(parse_palette("#ff0000,#0000ff"), "dist")
    red_blue = torch.tensor([[[1.0, 0.0]], [[0.0, 0.0]], [[0.0, 1.0]]])  # (3, 1, 2): one pixel each
    ab = rgb_to_lab(red_blue)[1:, 0].T  # (2 colors, 2)
    assert condition.shape == (313,)
    assert float(condition.sum()) == pytest.approx(1.0, abs=1e-5)
    assert torch.allclose(condition, soft_encode(ab).mean(0), atol=1e-6)  # half the mass for each color


def test_the_generator_receives_the_palettes_condition_instead_of_a_memory_value(
    colorizer, monkeypatch
) -> None:
    received = []
    generator = colorizer.model.generator
    forward = generator.forward

    def spy(gray: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
        received.append(cond)
        return forward(gray, cond)

    monkeypatch.setattr(generator, "forward", spy)
    _colorize_all(colorizer, [photo(10, 10), photo(12, 8)], palette="#d02030,#f0c020")
    expected = palette_condition(parse_palette("#d02030,#f0c020"), "dist")
    (cond,) = received
    assert cond.shape == (2, 313)
    assert torch.equal(cond[0], expected)
    assert torch.equal(cond[1], expected)


def test_a_palette_with_top_k_above_one_is_refused(colorizer) -> None:
    with pytest.raises(ValueError, match="top_k must be 1 with a palette"):
        colorizer(photo(8, 8), top_k=2, palette="#ff0000")


def test_no_memory_model_colorizes_unconditioned_and_refuses_top_k_and_palettes(no_memory_dir: Path) -> None:
    plain = Colorizer.from_pretrained(no_memory_dir)
    assert plain.backbone is None
    (out,) = plain(photo(15, 25, mode="RGBA"))
    assert out.size == (15, 25)
    with pytest.raises(ValueError, match="without memory"):
        plain(photo(8, 8), top_k=2)
    with pytest.raises(ValueError, match="without memory"):
        plain(photo(8, 8), palette="#ff0000")


def test_no_memory_model_refuses_top_k_and_palette_on_the_command_line(
    no_memory_dir: Path, tmp_path: Path, capsys
) -> None:
    photo(8, 8).save(tmp_path / "a.png")
    assert cli(no_memory_dir, tmp_path / "a.png", "-o", tmp_path / "out", "--top-k", "2") == 2
    assert "without memory" in capsys.readouterr().err
    assert cli(no_memory_dir, tmp_path / "a.png", "-o", tmp_path / "out", "--palette", "#ff0000") == 2
    assert "without memory" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_backbone_weights_other_than_the_trained_ones_are_refused(run_dir: Path, tmp_path: Path) -> None:
    tensors, meta = load_checkpoint(run_dir / "model.safetensors")
    meta = {k: v for k, v in meta.items() if k not in RESERVED_META_KEYS}
    meta["backbone"] = {"name": "tiny", "sha256": "0123456789abcdef" * 4}
    save_checkpoint(tmp_path / "other.safetensors", tensors, meta)
    with pytest.raises(WeightsError, match="sha256 0123456789abcdef"):
        Colorizer.from_pretrained(tmp_path / "other.safetensors")


# --- the colorize command ---------------------------------------------------------------------------------


def test_top_k_files_are_named_k2_to_kK_and_hold_the_apis_results(colorizer, tmp_path: Path) -> None:
    image = photo(26, 18, seed=8, mode="RGBA")
    image.save(tmp_path / "frame.png")
    assert cli(colorizer.path, tmp_path / "frame.png", "-o", tmp_path / "out", "--top-k", "3") == 0
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == ["frame.k2.png", "frame.k3.png", "frame.png"]
    expected = colorizer(image, top_k=3)
    for name, result in zip(["frame.png", "frame.k2.png", "frame.k3.png"], expected, strict=True):
        written = np.asarray(Image.open(tmp_path / "out" / name), dtype=int)
        assert np.abs(written - np.asarray(result, dtype=int)).max() <= 1


def make_tree(root: Path) -> None:
    """root/b.PNG, root/a.jpg, root/notes.txt, root/sub/c.png, root/sub/deeper/d.webp."""
    for name in ("b.PNG", "a.jpg", "sub/c.png", "sub/deeper/d.webp"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        photo(12, 9, seed=len(name)).save(root / name)
    (root / "notes.txt").write_text("not an image")


def outputs(out: Path) -> list[str]:
    """Files under out, relative, sorted."""
    return sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())


def test_folder_inputs_are_mirrored_with_png_names(colorizer, tmp_path: Path) -> None:
    make_tree(tmp_path / "in")
    assert cli(colorizer.path, tmp_path / "in", "-o", tmp_path / "flat") == 0
    assert outputs(tmp_path / "flat") == ["a.png", "b.png"]
    assert cli(colorizer.path, tmp_path / "in", "-o", tmp_path / "deep", "--recursive") == 0
    assert outputs(tmp_path / "deep") == ["a.png", "b.png", "sub/c.png", "sub/deeper/d.png"]


def test_the_batch_library_plans_refuses_and_reports_as_the_readme_shows(colorizer, tmp_path: Path) -> None:
    make_tree(tmp_path / "in")
    (tmp_path / "in" / "broken.png").write_bytes(b"not a png")
    jobs, roots, problems = batch.collect_jobs(
        [str(tmp_path / "in"), str(tmp_path / "missing")], recursive=False
    )
    assert sorted(job.relative.name for job in jobs) == ["a.jpg", "b.PNG", "broken.png"]
    assert problems == [f"{tmp_path / 'missing'}: no such file or folder"]
    assert batch.check_outputs(jobs, roots, tmp_path / "in", top_k=1, existing_allowed=False).startswith(
        "-o "
    )
    assert batch.check_outputs(jobs, roots, tmp_path / "out", top_k=1, existing_allowed=False) is None
    lines: list[str] = []
    finished: list[int] = []
    done, failed = batch.colorize_jobs(
        colorizer, jobs, tmp_path / "out", 1, None, 8, say=lines.append, advance=finished.append
    )
    assert (done, failed) == (2, 1) and sum(finished) == 3
    assert outputs(tmp_path / "out") == ["a.png", "b.png"]  # the broken file is written not at all
    assert len(lines) == 1 and lines[0].startswith("error: ") and "broken.png" in lines[0]
    assert "2 outputs exist already" in batch.check_outputs(jobs, roots, tmp_path / "out", 1, False)


def test_globs_match_extensions_in_any_case_and_mirror_below_their_folder_part(
    colorizer, tmp_path: Path
) -> None:
    make_tree(tmp_path / "in")
    pattern = str(tmp_path / "in" / "**" / "*.png")
    assert cli(colorizer.path, pattern, "-o", tmp_path / "out") == 0
    assert outputs(tmp_path / "out") == ["b.png", "sub/c.png"]


def test_file_inputs_are_written_under_their_names(colorizer, tmp_path: Path) -> None:
    make_tree(tmp_path / "in")
    assert (
        cli(
            colorizer.path, tmp_path / "in" / "sub" / "c.png", tmp_path / "in" / "a.jpg", "-o", tmp_path / "o"
        )
        == 0
    )
    assert outputs(tmp_path / "o") == ["a.png", "c.png"]


def test_failures_are_reported_and_summarised_with_a_nonzero_exit(colorizer, tmp_path: Path, capsys) -> None:
    photo(10, 10).save(tmp_path / "good.png")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    status = cli(
        colorizer.path,
        tmp_path / "good.png",
        tmp_path / "broken.png",
        tmp_path / "gone.png",
        "-o",
        tmp_path / "o",
    )
    captured = capsys.readouterr()
    assert status == 1
    assert captured.out.strip() == "1 colorized, 2 failed"
    errors = captured.err.strip().splitlines()
    assert len(errors) == 2
    assert str(tmp_path / "broken.png") in errors[1] and str(tmp_path / "gone.png") in errors[0]
    assert outputs(tmp_path / "o") == ["good.png"]


def test_an_out_dir_that_is_an_input_folder_is_refused(colorizer, tmp_path: Path, capsys) -> None:
    make_tree(tmp_path / "in")
    assert cli(colorizer.path, tmp_path / "in", "-o", tmp_path / "in") == 2
    assert "is the input folder" in capsys.readouterr().err


def test_an_out_dir_inside_a_recursively_searched_input_is_refused(colorizer, tmp_path: Path, capsys) -> None:
    make_tree(tmp_path / "in")
    assert cli(colorizer.path, tmp_path / "in", "-o", tmp_path / "in" / "colored", "--recursive") == 2
    assert "is inside the input folder" in capsys.readouterr().err
    # Without --recursive the sub-folder is never read back as input, so it is allowed.
    assert cli(colorizer.path, tmp_path / "in", "-o", tmp_path / "in" / "colored") == 0
    assert outputs(tmp_path / "in" / "colored") == ["a.png", "b.png"]


def test_an_input_file_is_never_overwritten(colorizer, tmp_path: Path, capsys) -> None:
    photo(10, 10).save(tmp_path / "frame.png")
    before = (tmp_path / "frame.png").read_bytes()
    assert cli(colorizer.path, tmp_path / "frame.png", "-o", tmp_path, "--overwrite") == 2
    assert "is an input file" in capsys.readouterr().err
    assert (tmp_path / "frame.png").read_bytes() == before


def test_two_inputs_with_one_output_name_are_refused(colorizer, tmp_path: Path, capsys) -> None:
    photo(10, 10).save(tmp_path / "frame.png")
    photo(10, 10).save(tmp_path / "frame.jpg")
    assert cli(colorizer.path, tmp_path / "frame.png", tmp_path / "frame.jpg", "-o", tmp_path / "o") == 2
    assert "would both be written to" in capsys.readouterr().err


def test_existing_outputs_need_overwrite_or_skip_existing(colorizer, tmp_path: Path, capsys) -> None:
    photo(10, 10).save(tmp_path / "frame.png")
    out = tmp_path / "o" / "frame.png"
    assert cli(colorizer.path, tmp_path / "frame.png", "-o", tmp_path / "o") == 0
    out.write_bytes(b"marker")
    capsys.readouterr()
    assert cli(colorizer.path, tmp_path / "frame.png", "-o", tmp_path / "o") == 2
    assert "1 outputs exist already" in capsys.readouterr().err
    assert cli(colorizer.path, tmp_path / "frame.png", "-o", tmp_path / "o", "--skip-existing") == 0
    assert capsys.readouterr().out.strip() == "0 colorized, 0 failed, 1 skipped (outputs exist)"
    assert out.read_bytes() == b"marker"
    assert cli(colorizer.path, tmp_path / "frame.png", "-o", tmp_path / "o", "--overwrite") == 0
    assert Image.open(out).size == (10, 10)


def test_bad_palette_on_the_command_line_exits_2_before_loading_anything(tmp_path: Path, capsys) -> None:
    photo(10, 10).save(tmp_path / "frame.png")
    status = cli(tmp_path / "no-model", tmp_path / "frame.png", "-o", tmp_path / "o", "--palette", "red")
    assert status == 2
    assert (
        capsys.readouterr().err.strip()
        == "error: --palette: 'red' is not a palette color; expected #rrggbb, e.g. #ff8000"
    )


def test_batch_size_does_not_change_the_results(colorizer, tmp_path: Path) -> None:
    for i in range(5):
        photo(14 + i, 11, seed=i).save(tmp_path / f"{i}.png")
    pattern = str(tmp_path / "*.png")
    assert cli(colorizer.path, pattern, "-o", tmp_path / "one", "--batch-size", "1") == 0
    assert cli(colorizer.path, pattern, "-o", tmp_path / "four", "--batch-size", "4") == 0
    for name in outputs(tmp_path / "one"):
        a = np.asarray(Image.open(tmp_path / "one" / name), dtype=int)
        b = np.asarray(Image.open(tmp_path / "four" / name), dtype=int)
        assert np.abs(a - b).max() <= 1


def _colorize_all(colorizer, images, **options):
    """Every image's colorings through the batch path, in input order."""
    return [result.images for result in colorizer.colorize_each(images, **options)]


# --- what a careless user or a full disk does ---------------------------------------------------------------


def test_a_symlink_loop_is_named_as_one_not_as_a_missing_file(run_dir: Path, tmp_path: Path, capsys) -> None:
    loop = tmp_path / "loop.png"
    loop.symlink_to(loop)
    assert cli(run_dir, loop, "-o", tmp_path / "out") == 1
    assert "loop.png: a broken symbolic link or a loop" in capsys.readouterr().err


def test_an_unwritable_out_dir_is_refused_before_the_model_loads(
    tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    photo(8, 8).save(tmp_path / "frame.png")

    def read_only(*args: object, **kwargs: object) -> None:
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(batch.tempfile, "TemporaryFile", read_only)
    # No model exists at all: the refusal must come first, before any loading.
    assert cli(tmp_path / "no-model", tmp_path / "frame.png", "-o", tmp_path / "out") == 2
    err = capsys.readouterr().err.strip()
    assert err == f"error: -o {tmp_path / 'out'}: cannot write in {tmp_path} (Read-only file system)"


def test_a_full_disk_leaves_no_partial_top_k_set(
    run_dir: Path, tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    photo(12, 9).save(tmp_path / "frame.png")
    calls = []
    real_save = Image.Image.save

    def disk_fills_on_the_second_file(self: Image.Image, fp, *args: object, **kwargs: object) -> None:
        calls.append(fp)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        real_save(self, fp, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "save", disk_fills_on_the_second_file)
    out = tmp_path / "out"
    assert cli(run_dir, tmp_path / "frame.png", "-o", out, "--top-k", 2) == 1
    assert "No space left on device" in capsys.readouterr().err
    assert list(out.rglob("*")) == []  # neither frame.png nor frame.k2.png, and no temp file


def test_the_python_api_takes_numpy_integers_float64_palettes_and_big_endian_16_bit(colorizer) -> None:
    image = photo(12, 10, seed=3)
    assert len(colorizer(image, top_k=np.int64(2))) == 2
    as_tensor = torch.tensor([[0.8, 0.1, 0.2]], dtype=torch.float64)
    same = colorizer(image, palette=as_tensor.float())[0]
    assert np.array_equal(np.asarray(colorizer(image, palette=as_tensor)[0]), np.asarray(same))
    gray = np.arange(120, dtype=np.uint16).reshape(10, 12) * 500
    big = colorizer(gray.astype(">u2"))[0]
    assert np.array_equal(np.asarray(big), np.asarray(colorizer(gray)[0]))


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda c: c(photo(8, 8), palette=torch.ones(3)), r"palette tensor holds colors \(n, 3\)"),
        (
            lambda c: c((torch.rand(3, 8, 8), torch.ones(8, 9))),
            r"alpha a tensor \(H, W\) = \(8, 8\), got \(8, 9\)",
        ),
        (lambda c: c((torch.rand(3, 8, 8), np.ones((8, 8)))), "alpha a tensor .* got"),
        (lambda c: c.colorize_each([photo(8, 8)], batch_size=0), "batch_size must be an integer >= 1"),
    ],
)
def test_bad_api_arguments_are_refused_by_name_at_once(colorizer, call, message) -> None:
    with pytest.raises(ValueError, match=message):
        call(colorizer)


def test_colorize_each_refuses_one_path_given_for_many(colorizer, tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="an iterable of images, got the one path"):
        colorizer.colorize_each(str(tmp_path / "one.png"))
