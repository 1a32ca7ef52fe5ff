"""Benchmark the color features and distances; prints figures (targets from the foundation issue).

Targets on a 2-core CPU: both features for 1,000 images of 64x64 in <= 20 s together; one distance call for
64 queries x 256 candidates in <= 20 ms for each distance.

    python benchmarks/bench_color.py [--images 1000] [--size 64] [--threads 2]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from memopainter.color import ab_distribution, palette_distance, symmetric_kl
from memopainter.color.palette import dominant_palettes


def synthetic_sprites(count: int, size: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Sprite-like test images: a few flat color blocks plus shading noise, and a transparent border."""
    colors = torch.rand(count, 4, 3, 1, 1, generator=generator)
    grid = torch.arange(size)
    quadrant = (grid.view(-1, 1) >= size // 2).long() * 2 + (grid.view(1, -1) >= size // 2).long()  # (H, W)
    rgb = torch.gather(
        colors.squeeze(-1).squeeze(-1), 1, quadrant.view(1, -1, 1).expand(count, -1, 3)
    )  # (N, H*W, 3)
    rgb = rgb.transpose(1, 2).reshape(count, 3, size, size)
    rgb = (rgb + 0.05 * torch.randn(rgb.shape, generator=generator)).clamp(0, 1)
    alpha = torch.zeros(count, size, size)
    border = size // 8
    alpha[:, border:-border, border:-border] = 1.0
    return rgb, alpha


def time_call(fn, repeats: int) -> float:
    """Median wall time of fn() in seconds, after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    """Run the benchmark and print one line per figure."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=100, help="images per ab_distribution call")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    generator = torch.Generator().manual_seed(0)
    rgb, alpha = synthetic_sprites(args.images, args.size, generator)

    start = time.perf_counter()
    for i in range(0, args.images, args.batch):
        ab_distribution(rgb[i : i + args.batch], alpha[i : i + args.batch])
    t_dist = time.perf_counter() - start
    start = time.perf_counter()
    dominant_palettes(rgb, 10, alpha)
    t_palette = time.perf_counter() - start
    total = t_dist + t_palette
    print(f"threads: {torch.get_num_threads()}, images: {args.images} of {args.size}x{args.size}")
    print(f"ab_distribution (313 bins):   {t_dist:6.2f} s  ({args.images / t_dist:7.0f} images/s)")
    print(f"dominant_palette (10 colors): {t_palette:6.2f} s  ({args.images / t_palette:7.0f} images/s)")
    verdict = "ok" if total <= 20 else "MISSED"
    print(f"both features:                {total:6.2f} s  (target <= 20 s): {verdict}")

    queries, candidates = 64, 256
    p = torch.softmax(torch.randn(queries, 1, 313, generator=generator) * 3, -1)
    q = torch.softmax(torch.randn(queries, candidates, 313, generator=generator) * 3, -1)
    t_kl = time_call(lambda: symmetric_kl(p, q), repeats=30)
    pal1 = torch.rand(queries, 1, 30, generator=generator)
    pal2 = torch.rand(queries, candidates, 30, generator=generator)
    t_pal = time_call(lambda: palette_distance(pal1, pal2), repeats=30)
    for name, seconds in (("symmetric_kl", t_kl), ("palette_distance", t_pal)):
        verdict = "ok" if seconds <= 0.020 else "MISSED"
        label = f"{name} {queries}x{candidates}:"
        print(f"{label:30s} {seconds * 1e3:6.2f} ms median (target <= 20 ms): {verdict}")


if __name__ == "__main__":
    main()
