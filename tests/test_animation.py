"""Specification of animations and frame sequences in and out: animated GIF, WebP and APNG files load whole
and save back alike (frames, timing, loop count, transparency); `memopainter colorize` colorizes them, and
with --sequence frame folders, as sequences; a damaged frame is one line naming the file and the frame, and
nothing is left at the output path.
"""

from __future__ import annotations

import io
import re
import struct
from pathlib import Path

import numpy as np
import pytest
from bad_inputs import gif_frame_starts, gif_with_broken_frame
from conftest import SPRITE_CLASSES, draw_sprite, run_cli, train_tiny
from PIL import Image

from memopainter.cli import colorize as colorize_cli
from memopainter.data.images import ImageLoadError, tensors_to_pil
from memopainter.data.sequences import (
    animation_format,
    is_animated,
    load_animation,
    save_animation,
    save_animations,
)
from memopainter.inference import Colorizer

pytestmark = pytest.mark.usefixtures("cache_dir", "one_thread")

FORMATS = {"GIF": ".gif", "WEBP": ".webp", "PNG": ".png"}
DURATIONS = [80, 120, 160, 200]  # multiples of 10 ms: GIF stores hundredths of a second


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory, tiny_settings) -> Path:
    """A tiny run with memory (dist feature): 12 steps of 4 over 9 sprites."""
    return train_tiny(tmp_path_factory.mktemp("animation"), [*tiny_settings, "train.steps=12"])


def walk(count: int = 4, mode: str = "RGBA", gray: bool = False) -> list[Image.Image]:
    """A knight sprite moving right, one frame per step, on a transparent (RGBA) or white (RGB) background."""
    body, detail, shape, _ = SPRITE_CLASSES["knight"]
    frames = []
    for step in range(count):
        sprite = draw_sprite((24, 36), body, detail, shape)
        if gray:
            sprite = sprite.convert("LA").convert("RGBA")
        canvas = Image.new("RGBA", (32, 40), (0, 0, 0, 0) if mode == "RGBA" else (255, 255, 255, 255))
        canvas.alpha_composite(sprite, (2 * step, 2))
        frames.append(canvas.convert(mode))
    return frames


def encode(frames: list[Image.Image], fmt: str, **options: object) -> bytes:
    """Frames as an animation file of `fmt`, with DURATIONS and loop count 2 unless told otherwise."""
    options = {"duration": DURATIONS[: len(frames)], "loop": 2, **options}
    if fmt == "GIF":
        options.setdefault("disposal", 2)
    elif fmt == "WEBP":
        options.setdefault("lossless", True)
    buffer = io.BytesIO()
    frames[0].save(buffer, format=fmt, save_all=True, append_images=frames[1:], **options)
    return buffer.getvalue()


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def frames_of(path: Path) -> tuple[list[np.ndarray], list[float], int | None, str]:
    """An animation file read by Pillow alone: RGBA frames (H, W, 4), durations, loop count, format."""
    with Image.open(path) as image:
        frames, durations = [], []
        for index in range(image.n_frames):
            image.seek(index)
            frames.append(np.asarray(image.convert("RGBA")))
            durations.append(image.info.get("duration"))
        return frames, durations, image.info.get("loop"), image.format


def opaque_equal(a: np.ndarray, b: np.ndarray) -> None:
    """Two RGBA frames (H, W, 4) with the same alpha and the same colors wherever they are not transparent."""
    np.testing.assert_array_equal(a[..., 3], b[..., 3])
    shown = a[..., 3] > 0
    np.testing.assert_array_equal(a[..., :3][shown], b[..., :3][shown])


def png_chunks(data: bytes) -> list[tuple[bytes, int, int]]:
    """(type, start, end) of every chunk of a PNG file."""
    chunks, offset = [], 8
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        chunks.append((data[offset + 4 : offset + 8], offset, offset + 12 + length))
        offset += 12 + length
    return chunks


def webp_frames(data: bytes) -> list[tuple[int, int]]:
    """(start, end) of each ANMF (frame) chunk of an animated WebP file."""
    frames, offset = [], 12
    while offset < len(data):
        kind, size = data[offset : offset + 4], struct.unpack("<I", data[offset + 4 : offset + 8])[0]
        if kind == b"ANMF":
            frames.append((offset, offset + 8 + size))
        offset += 8 + size + (size & 1)
    return frames


# --- files in and out -------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_an_animation_round_trips_its_frames_timing_loop_and_transparency(fmt: str, tmp_path: Path) -> None:
    source = write(tmp_path / f"walk{FORMATS[fmt]}", encode(walk(), fmt))
    animation = load_animation(source)
    assert (len(animation.frames), animation.durations, animation.loop, animation.format) == (
        4,
        DURATIONS,
        2,
        fmt,
    )
    for rgb, alpha in animation.frames:
        assert rgb.shape == (3, 40, 32) and alpha.shape == (40, 32)
        assert alpha[0, 0] == 0 and alpha[20, 16] == 1  # the corner is transparent, the knight is not

    copy = tmp_path / "out" / f"copy{FORMATS[fmt]}"
    save_animation(copy, [tensors_to_pil(rgb, alpha) for rgb, alpha in animation.frames], animation)
    frames, durations, loop, written = frames_of(copy)
    originals = frames_of(source)[0]
    assert (len(frames), [round(d) for d in durations], loop, written) == (4, DURATIONS, 2, fmt)
    for frame, original in zip(frames, originals, strict=True):
        opaque_equal(frame, original)
    assert load_animation(copy).durations == DURATIONS


def test_an_apngs_poster_stays_a_poster_that_never_plays(tmp_path: Path) -> None:
    frames = walk()
    source = tmp_path / "poster.png"
    frames[0].save(
        source, save_all=True, append_images=frames[1:], duration=[70, 80, 90], loop=0, default_image=True
    )
    animation = load_animation(source)
    assert animation.default_image and len(animation.frames) == 4  # the poster is colored too
    copy = tmp_path / "copy.png"
    save_animation(copy, [tensors_to_pil(rgb, alpha) for rgb, alpha in animation.frames], animation)
    with Image.open(copy) as written:
        assert written.info.get("default_image") and written.n_frames == 4
        durations = []
        for index in range(1, 4):
            written.seek(index)
            durations.append(round(written.info["duration"]))
    assert durations == [70, 80, 90]


@pytest.mark.parametrize("fmt", FORMATS)
def test_an_opaque_animation_stays_opaque(fmt: str, tmp_path: Path) -> None:
    animation = load_animation(write(tmp_path / f"walk{FORMATS[fmt]}", encode(walk(mode="RGB"), fmt)))
    # As load_image: an alpha channel when the file has one (libwebp's lossless files do), opaque here.
    assert all(alpha is None or alpha.min() == 1 for _, alpha in animation.frames)
    copy = tmp_path / f"copy{FORMATS[fmt]}"
    save_animation(copy, [tensors_to_pil(*frame) for frame in animation.frames], animation)
    assert all(frame[..., 3].min() == 255 for frame in frames_of(copy)[0])


def test_a_gif_without_a_loop_count_plays_once_after_saving_too(tmp_path: Path) -> None:
    frames = walk(3)
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:], duration=100)
    animation = load_animation(write(tmp_path / "once.gif", buffer.getvalue()))
    assert animation.loop is None
    save_animation(tmp_path / "copy.gif", [tensors_to_pil(*frame) for frame in animation.frames], animation)
    with Image.open(tmp_path / "copy.gif") as copy:
        assert "loop" not in copy.info and copy.n_frames == 3


def test_is_animated_reads_only_the_header(tmp_path: Path) -> None:
    for fmt, suffix in FORMATS.items():
        animated = write(tmp_path / f"walk{suffix}", encode(walk(), fmt))
        assert is_animated(animated) and animation_format(animated) == fmt
        still = tmp_path / f"still{suffix}"
        walk(1)[0].save(still, format=fmt)
        assert not is_animated(still)
    assert not is_animated(write(tmp_path / "notes.gif", b"not an image\n"))
    assert not is_animated(tmp_path / "missing.gif")


def test_the_pixel_cap_counts_every_frame_before_any_is_decoded(tmp_path: Path) -> None:
    source = write(tmp_path / "walk.gif", encode(walk(), "GIF"))  # 4 frames of 32 x 40 = 5120 pixels
    with pytest.raises(
        ImageLoadError, match=r"too many pixels \(4 frames of 32x40 = 5120 > max_pixels 5119\)"
    ):
        load_animation(source, max_pixels=5119)
    assert len(load_animation(source, max_pixels=5120).frames) == 4


def test_save_animations_writes_all_or_none(tmp_path: Path) -> None:
    animation = load_animation(write(tmp_path / "walk.webp", encode(walk(), "WEBP")))
    images = [tensors_to_pil(*frame) for frame in animation.frames]
    (tmp_path / "out" / "b.webp").mkdir(parents=True)  # the second file cannot be written
    with pytest.raises(OSError):
        save_animations(
            [tmp_path / "out" / "a.webp", tmp_path / "out" / "b.webp"], [images, images], animation
        )
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["b.webp"]
    with pytest.raises(ValueError, match="3 images for an animation of 4 frames"):
        save_animation(tmp_path / "out" / "c.webp", images[:3], animation)
    assert not (tmp_path / "out" / "c.webp").exists()


# --- damaged frames ---------------------------------------------------------------------------------------


def gif_cut_in_frame_data(frames: list[Image.Image], frame: int) -> bytes:
    """A GIF cut off half-way through frame `frame`'s pixel data: its header reads, its pixels do not."""
    data = encode(frames, "GIF")
    start, end = gif_frame_starts(data)[frame : frame + 2]
    assert data[start + 9] & 0x80, "each frame of noise has a palette of its own"
    pixels = start + 10 + 768 + 1  # past the descriptor, the 256-color palette and the LZW code size
    return data[: (pixels + end) // 2]


def apng_cut_in_frame(frames: list[Image.Image], frame: int) -> bytes:
    """An APNG cut off half-way through the data chunk (fdAT) of frame `frame`."""
    data = encode(frames, "PNG")
    chunks = [(start, end) for kind, start, end in png_chunks(data) if kind in (b"IDAT", b"fdAT")]
    start, end = chunks[frame]
    return data[: (start + end) // 2]


def webp_with_bad_frame(frames: list[Image.Image], frame: int) -> bytes:
    """An animated WebP whose frame `frame` has its compressed pixels overwritten with noise."""
    data = bytearray(encode(frames, "WEBP"))
    start, end = webp_frames(bytes(data))[frame]
    payload = start + 8 + 16 + 8 + 5  # ANMF header, frame header, VP8L header and its 5 signature bytes
    noise = np.random.default_rng(0).integers(0, 256, end - payload, dtype=np.uint8).tobytes()
    data[payload:end] = noise
    return bytes(data)


def noisy(count: int) -> list[Image.Image]:
    """Seeded frames of noise: every frame gets its own 256-color palette in a GIF."""
    rng = np.random.default_rng(1)
    return [Image.fromarray(rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)) for _ in range(count)]


DAMAGED = {
    "gif-header": ("walk.gif", lambda: gif_with_broken_frame(noisy(4), 2), 2),
    "gif-pixels": ("walk.gif", lambda: gif_cut_in_frame_data(noisy(4), 2), 2),
    "apng": ("walk.png", lambda: apng_cut_in_frame(noisy(4), 2), 2),
    "webp": ("walk.webp", lambda: webp_with_bad_frame(noisy(4), 1), 1),
}


@pytest.mark.parametrize("case", DAMAGED)
def test_a_damaged_frame_is_one_error_naming_the_file_and_the_frame(case: str, tmp_path: Path) -> None:
    name, make, frame = DAMAGED[case]
    path = write(tmp_path / name, make())
    assert is_animated(path)
    with pytest.raises(ImageLoadError) as raised:
        load_animation(path)
    message = str(raised.value)
    assert "\n" not in message
    assert re.fullmatch(rf"{re.escape(str(path))}: frame {frame}: corrupt or truncated image \(.+\)", message)


# --- memopainter colorize ---------------------------------------------------------------------------------


def colorize(*args: object) -> int:
    return run_cli(colorize_cli, ["colorize", *map(str, args)])


def files(folder: Path) -> list[str]:
    """Every file under folder, hidden ones too, as sorted relative paths."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


@pytest.mark.parametrize("fmt", FORMATS)
def test_colorize_writes_an_animation_as_an_animation_of_its_format(
    fmt: str, run_dir: Path, tmp_path: Path
) -> None:
    suffix = FORMATS[fmt]
    source = write(tmp_path / "in" / f"walk{suffix}", encode(walk(gray=True), fmt))
    assert colorize(run_dir, source, "-o", tmp_path / "out", "--top-k", 2) == 0
    assert files(tmp_path / "out") == sorted([f"walk{suffix}", f"walk.k2{suffix}"])
    for output in (f"walk{suffix}", f"walk.k2{suffix}"):
        frames, durations, loop, written = frames_of(tmp_path / "out" / output)
        assert (len(frames), [round(d) for d in durations], loop, written) == (4, DURATIONS, 2, fmt)
        assert all(frame.shape == (40, 32, 4) for frame in frames)
        assert all(frame[0, 0, 3] == 0 and frame[20, 16, 3] == 255 for frame in frames)


def test_colorize_writes_the_colorings_of_colorize_sequence(run_dir: Path, tmp_path: Path) -> None:
    source = write(tmp_path / "walk.png", encode(walk(gray=True), "PNG"))  # APNG: 8-bit RGBA, exact
    assert colorize(run_dir, source, "-o", tmp_path / "out") == 0
    expected = Colorizer.from_pretrained(run_dir).colorize_sequence(load_animation(source).frames)
    frames = frames_of(tmp_path / "out" / "walk.png")[0]
    for frame, colored in zip(frames, expected, strict=True):
        np.testing.assert_array_equal(frame, np.asarray(colored.images[0]))


def test_colorize_with_a_palette_colors_every_frame_with_it(run_dir: Path, tmp_path: Path) -> None:
    source = write(tmp_path / "walk.gif", encode(walk(gray=True), "GIF"))
    assert colorize(run_dir, source, "-o", tmp_path / "out", "--palette", "#d02030,#f0c020") == 0
    assert files(tmp_path / "out") == ["walk.gif"]
    assert len(frames_of(tmp_path / "out" / "walk.gif")[0]) == 4


def spy_on_sequences(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """Record the frames (file names) of every colorize_sequence call, which still runs."""
    calls: list[list[str]] = []
    original = Colorizer.colorize_sequence

    def recorded(self, frames, *args, **kwargs):
        calls.append([Path(frame).name if isinstance(frame, (str, Path)) else "tensor" for frame in frames])
        return original(self, frames, *args, **kwargs)

    monkeypatch.setattr(Colorizer, "colorize_sequence", recorded)
    return calls


def frame_folder(folder: Path, count: int = 12) -> list[str]:
    """frame1.png ... frameN.png, gray walk frames; returns their names in natural order."""
    frames = walk(count, gray=True)
    names = [f"frame{i + 1}.png" for i in range(count)]
    folder.mkdir(parents=True)
    for name, image in zip(names, frames, strict=True):
        image.save(folder / name)
    return names


def test_sequence_colorizes_a_folder_in_natural_order_and_writes_each_frame(
    run_dir: Path, tmp_path: Path, monkeypatch
) -> None:
    names = frame_folder(tmp_path / "shot")
    calls = spy_on_sequences(monkeypatch)
    assert colorize(run_dir, "--sequence", tmp_path / "shot", "-o", tmp_path / "out", "--top-k", 2) == 0
    assert calls == [names]  # frame2 before frame10
    expected = sorted([*names, *(name.replace(".png", ".k2.png") for name in names)])
    assert files(tmp_path / "out") == expected
    assert Image.open(tmp_path / "out" / "frame10.png").size == (32, 40)


def test_with_recursive_each_folder_is_a_sequence_of_its_own(
    run_dir: Path, tmp_path: Path, monkeypatch
) -> None:
    first = frame_folder(tmp_path / "shots" / "a", 3)
    second = frame_folder(tmp_path / "shots" / "b", 4)
    calls = spy_on_sequences(monkeypatch)
    argv = ["--sequence", "--recursive", tmp_path / "shots", "-o", tmp_path / "out"]
    assert colorize(run_dir, *argv) == 0
    assert calls == [first, second]
    assert files(tmp_path / "out") == sorted([f"a/{n}" for n in first] + [f"b/{n}" for n in second])


def test_without_sequence_a_folder_is_colorized_frame_by_frame(
    run_dir: Path, tmp_path: Path, monkeypatch
) -> None:
    names = frame_folder(tmp_path / "shot", 3)
    calls = spy_on_sequences(monkeypatch)
    assert colorize(run_dir, tmp_path / "shot", "-o", tmp_path / "out") == 0
    assert calls == []
    assert files(tmp_path / "out") == sorted(names)


def test_a_damaged_frame_fails_its_animation_alone_in_one_line(run_dir: Path, tmp_path: Path, capsys) -> None:
    bad = write(tmp_path / "in" / "bad.gif", gif_cut_in_frame_data(noisy(4), 2))
    good = write(tmp_path / "in" / "good.gif", encode(walk(gray=True), "GIF"))
    assert colorize(run_dir, bad, good, "-o", tmp_path / "out", "--top-k", 2) == 1
    printed = capsys.readouterr()
    lines = printed.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {bad}: frame 2: corrupt or truncated image (")
    assert "1 colorized, 1 failed" in printed.out
    assert files(tmp_path / "out") == ["good.gif", "good.k2.gif"]  # nothing of bad.gif, no temp file


def test_a_bad_frame_in_a_sequence_writes_none_of_its_frames(run_dir: Path, tmp_path: Path, capsys) -> None:
    names = frame_folder(tmp_path / "shot", 5)
    (tmp_path / "shot" / names[3]).write_bytes(b"not an image")
    assert colorize(run_dir, "--sequence", tmp_path / "shot", "-o", tmp_path / "out") == 1
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"error: {tmp_path / 'shot'}: frame 3: ")
    assert "frame4.png: not a recognised image file" in lines[0]
    assert not (tmp_path / "out").exists() or files(tmp_path / "out") == []


def test_skip_existing_redoes_a_sequence_whole_unless_every_frame_is_done(
    run_dir: Path, tmp_path: Path, monkeypatch
) -> None:
    names = frame_folder(tmp_path / "shot", 3)
    out = tmp_path / "out"
    assert colorize(run_dir, "--sequence", tmp_path / "shot", "-o", out) == 0
    calls = spy_on_sequences(monkeypatch)
    assert colorize(run_dir, "--sequence", tmp_path / "shot", "-o", out, "--skip-existing") == 0
    assert calls == []
    (out / names[1]).unlink()
    assert colorize(run_dir, "--sequence", tmp_path / "shot", "-o", out, "--skip-existing") == 0
    assert calls == [names]


def test_help_shows_sequence_and_an_animation_example(capsys) -> None:
    with pytest.raises(SystemExit):
        run_cli(colorize_cli, ["colorize", "--help"])
    text = capsys.readouterr().out
    assert "--sequence" in text and "walk.gif" in text
