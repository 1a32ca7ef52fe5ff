"""Benchmark what smoothing costs: a 100-frame sequence colorized with smooth=True against smooth=False.

Target: smoothing adds no more than 5% to colorizing the sequence. Both are timed alternately in one run (the
order swapped every repeat, so a machine that slows down or speeds up weighs on both alike) and the medians
compared. The frames are in memory (PIL images), so file reading is not counted: the ratio is that of the
colorizing itself, at each frame size asked for (sprites are small, and the smoothing's cost per frame does
not grow with the frame while the rest does). The model is bench_colorize's: the default architecture at
image size 64 with 100 random memory slots and the real default backbone when its weights are cached, or
a run folder given with --model.

    python benchmarks/bench_sequence.py [--threads 2] [--repeats 7] [--frames 100] [--sizes 72 256]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from bench_colorize import make_model
from PIL import Image

from memopainter.inference import Colorizer


def walk_frames(count: int, size: int) -> list[Image.Image]:
    """An RGBA sprite walking across the frame: a body, a head and swinging legs on transparent ground."""
    frames = []
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size
    for t in range(count):
        phase = 2 * np.pi * t / 8
        cx = 0.35 + 0.3 * (t % 8) / 8
        body = ((x - cx) / 0.12) ** 2 + ((y - 0.5) / 0.2) ** 2 < 1
        head = (x - cx) ** 2 + (y - 0.25) ** 2 < 0.08**2
        legs = (np.abs(x - cx - 0.05 * np.sin(phase) * (y - 0.7) / 0.2) < 0.03) & (y > 0.65) & (y < 0.9)
        rgba = np.zeros((size, size, 4), dtype=np.uint8)
        rgba[body] = (200, 40, 50, 255)
        rgba[head] = (240, 200, 160, 255)
        rgba[legs] = (40, 60, 160, 255)
        frames.append(Image.fromarray(rgba, mode="RGBA"))
    return frames


def timed(model: Colorizer, frames: list[Image.Image], smooth: bool) -> float:
    start = time.perf_counter()
    results = model.colorize_sequence(frames, smooth=smooth)
    seconds = time.perf_counter() - start
    assert len(results) == len(frames)
    return seconds


def bench(model: Colorizer, count: int, size: int, repeats: int) -> None:
    """Median seconds of both, measured alternately, and their ratio."""
    frames = walk_frames(count, size)
    timed(model, frames[:8], True)  # warm up both paths
    timed(model, frames[:8], False)
    times: dict[bool, list[float]] = {True: [], False: []}
    for repeat in range(repeats):
        for smooth in (True, False) if repeat % 2 else (False, True):
            times[smooth].append(timed(model, frames, smooth))
    smoothed, plain = statistics.median(times[True]), statistics.median(times[False])
    print(
        f"{count} frames of {size}x{size}: smooth=False {plain:.3f} s, smooth=True {smoothed:.3f} s, "
        f"ratio {smoothed / plain:.3f} (target <= 1.05; medians of {repeats})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--sizes", type=int, nargs="+", default=[72, 256])
    parser.add_argument("--model", type=Path, help="a run folder instead of the synthetic default model")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="bench-sequence-") as tmp:
        path, backbone = (args.model, "as trained") if args.model else make_model(Path(tmp))
        model = Colorizer.from_pretrained(path)
        print(
            f"model {path.name if args.model is None else path}, backbone {backbone}, {args.threads} threads"
        )
        for size in args.sizes:
            bench(model, args.frames, size, args.repeats)


if __name__ == "__main__":
    main()
