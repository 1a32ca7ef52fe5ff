"""Benchmark line-art extraction (data.lineart.extract_lineart) on 2 cores: seconds and peak memory.

Extraction runs when a line-art model is given an image that is not line art yet, and once per training frame
of a set without drawings. The image is flat fills outlined in black with one-pixel dithering inside every
other cell, so the median passes and the steps both have work to do. Figures are medians; the machine may be
shared. Peak memory is the VmHWM growth of a fresh process over its RSS with the image already in memory.

    python benchmarks/bench_lineart.py [--threads 2] [--repeats 5] [--sizes 256 1024 4096]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from memopainter.data.lineart import extract_lineart


def textured_art(size: int) -> torch.Tensor:
    """(3, size, size) in [0, 1]: 16 x 16 flat cells with black borders, half of them dithered."""
    generator = torch.Generator().manual_seed(0)
    cell = size // 16
    colors = torch.rand(3, 16, 16, generator=generator)
    rgb = colors.repeat_interleave(cell, 1).repeat_interleave(cell, 2)  # (3, size, size)
    y, x = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    dithered = ((y // cell + x // cell) % 2 == 0) & ((y + x) % 2 == 0)
    rgb[:, dithered] *= 0.7
    line = max(1, size // 256)
    borders = (y % cell < line) | (x % cell < line)
    rgb[:, borders] = 0.0
    return rgb


PEAK_SCRIPT = """
import sys, time, torch
from memopainter.data.lineart import extract_lineart
sys.path.insert(0, sys.argv[3])
from bench_lineart import textured_art
from peak_memory import reset_peak, status
torch.set_num_threads(int(sys.argv[2]))
rgb = textured_art(int(sys.argv[1]))
alpha = torch.ones(rgb.shape[1:])

base, reset = reset_peak()
extract_lineart(rgb, alpha)
print(base, status("VmHWM:"), reset)
"""


def peak_growth(size: int, threads: int) -> str:
    """Peak RSS growth while a fresh process extracts one size x size image, as printed."""
    here = Path(__file__).resolve().parent
    args = [sys.executable, "-c", PEAK_SCRIPT, str(size), str(threads), str(here)]
    result = subprocess.run(args, capture_output=True, text=True, check=True)
    base, peak, reset = result.stdout.split()
    growth = f"{(int(peak) - int(base)) / 2**30:.2f} GB"
    return growth if reset == "True" else f"{growth} (VmHWM could not be reset: includes the set-up's peak)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 1024, 4096])
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    for size in args.sizes:
        rgb, alpha = textured_art(size), torch.ones(size, size)
        seconds = []
        for _ in range(args.repeats if size <= 1024 else 1):
            start = time.perf_counter()
            extract_lineart(rgb, alpha)
            seconds.append(time.perf_counter() - start)
        print(
            f"{size}x{size}: {statistics.median(seconds):.3f} s (median of {len(seconds)}), "
            f"peak memory growth {peak_growth(size, args.threads)}"
        )


if __name__ == "__main__":
    main()
