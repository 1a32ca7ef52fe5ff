"""A corpus of awkward and hostile image files, made by the tests themselves (nothing is checked in).

`write_corpus(folder)` writes every case and returns them; a case says whether a command should take the file
(`readable`) and, when it should not, words its one-line error must contain.
"""

from __future__ import annotations

import io
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image


@dataclass(frozen=True)
class Case:
    name: str  # the file name in the corpus folder
    readable: bool  # whether commands should colorize it
    problem: str = ""  # for unreadable files: words the error line must contain


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return (
        struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    )


def bomb_png(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height gray pixels, with almost no data: a decompression bomb."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    rows = zlib.compress(b"\x00" * 1024)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", rows)
        + _png_chunk(b"IEND", b"")
    )


def gif_frame_starts(data: bytes) -> list[int]:
    """Where each frame of a GIF starts (its image descriptor, 0x2C), found by walking the file's blocks."""

    def table(flags: int) -> int:  # bytes of the color table a flags byte announces
        return 3 << ((flags & 7) + 1) if flags & 0x80 else 0

    offset = 13 + table(data[10])  # header, logical screen descriptor, global color table
    starts = []
    while offset < len(data) and data[offset] != 0x3B:
        if data[offset] == 0x21:  # an extension: introducer and label, then sub-blocks
            offset += 2
        elif data[offset] == 0x2C:  # an image: descriptor, local color table, LZW code size, sub-blocks
            starts.append(offset)
            offset += 10 + table(data[offset + 9]) + 1
        else:
            raise ValueError(f"no GIF block starts at byte {offset}")
        while data[offset]:  # sub-blocks, up to the empty one
            offset += data[offset] + 1
        offset += 1
    return starts


def gif_with_broken_frame(frames: list[Image.Image], broken: int) -> bytes:
    """An animated GIF of `frames` cut off inside frame `broken`'s header (counted from 0)."""
    data = _encoded(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    return data[: gif_frame_starts(data)[broken] + 6]


def _encoded(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def _sprite(width: int, height: int, seed: int = 0) -> Image.Image:
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    return Image.fromarray(pixels, mode="RGB")


def _files() -> dict[Case, bytes]:
    good = _encoded(_sprite(24, 16), "PNG")
    sixteen = Image.fromarray((np.arange(24 * 16).reshape(16, 24) * 150).astype(np.uint16))
    frames = [_sprite(12, 12, seed) for seed in range(3)]
    return {
        Case("zero-bytes.png", False, "empty file"): b"",
        Case("text.png", False, "not a recognised image file"): b"this is not an image\n",
        Case("truncated.png", False, "truncated"): good[: len(good) // 2],
        Case("bomb.png", False, "too many pixels"): bomb_png(100_000, 100_000),
        Case("strip.png", False, "wider than 100 times its height"): _encoded(
            Image.new("L", (20_000, 1)), "PNG"
        ),
        Case("sixteen-bit.png", True): _encoded(sixteen, "PNG"),
        Case("palette.png", True): _encoded(_sprite(20, 20).convert("P", palette=Image.ADAPTIVE), "PNG"),
        Case("rgba.png", True): _encoded(_sprite(18, 30).convert("RGBA"), "PNG"),
        Case("cmyk.jpg", True): _encoded(_sprite(16, 16).convert("CMYK"), "JPEG"),
        Case("animated.gif", True): _encoded(frames[0], "GIF", save_all=True, append_images=frames[1:]),
        # Frame 0 decodes, frame 1 does not: colorize names the frame, first-frame readers the file.
        Case("broken-frame.gif", False, "corrupt or truncated"): gif_with_broken_frame(frames, 1),
        Case("tiny.png", True): _encoded(_sprite(1, 1), "PNG"),
        Case("tall.png", True): _encoded(_sprite(6, 300), "PNG"),
    }


def write_corpus(folder: Path) -> list[Case]:
    """Write every case into `folder`; returns the cases."""
    folder.mkdir(parents=True, exist_ok=True)
    cases = []
    for case, data in _files().items():
        (folder / case.name).write_bytes(data)
        cases.append(case)
    return cases
