"""Benchmark the color memory; prints figures (targets from the memory issue).

Targets on a 2-core CPU: one training step of 16 queries (retrieve top-1, triplet loss with backward to q,
update) on m = 10,000 slots of key_dim 512 and "dist" values with top_k 256 in <= 15 ms (median);
retrieve alone for 16 queries on m = 1,000,000 slots in <= 0.5 s.

Wall times are medians; "cpu" is the process CPU time over the same calls (all threads), which other
processes on a shared machine inflate less than wall time.

    python benchmarks/bench_memory.py [--threads 2] [--repeats 50] [--large-size 1000000]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from memopainter.memory import ColorMemory


def time_call(fn: Callable[[], object], repeats: int) -> tuple[float, float]:
    """Median wall and median process CPU seconds of fn(), after one warm-up call."""
    fn()
    walls, cpus = [], []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return statistics.median(walls), statistics.median(cpus)


def random_batch(batch: int, key_dim: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Unit queries (B, key_dim) and peaked 313-bin distributions (B, 313)."""
    q = F.normalize(torch.randn(batch, key_dim, generator=generator), dim=1)
    v = torch.softmax(3.0 * torch.randn(batch, 313, generator=generator), dim=1)
    return q, v


def bench_training_step(
    size: int, batch: int, repeats: int, generator: torch.Generator
) -> tuple[float, float, float]:
    """Median wall and CPU seconds of one step on a memory filled by earlier updates, and its hit rate."""
    memory = ColorMemory(size, key_dim=512, feature="dist", top_k=256, seed=0)
    for _ in range(size // batch + 1):
        memory.update(*random_batch(batch, 512, generator))
    # Timed queries come from 64 clusters, half with their cluster's color, so some hit and find positives.
    centres = F.normalize(torch.randn(64, 512, generator=generator), dim=1)
    colors = torch.softmax(3.0 * torch.randn(64, 313, generator=generator), dim=1)
    hits = []

    def step() -> None:
        which = torch.randint(64, (batch,), generator=generator)
        noise = 0.7 * torch.randn(batch, 512, generator=generator) / 512**0.5
        q = F.normalize(centres[which] + noise, dim=1).requires_grad_(True)
        own_color = torch.rand(batch, 1, generator=generator) < 0.5
        v = torch.where(own_color, colors[which], random_batch(batch, 512, generator)[1])
        memory.retrieve(q, 1)
        memory.triplet_loss(q, v).backward()
        hits.append(memory.update(q.detach(), v).float().mean().item())

    wall, cpu = time_call(step, repeats)
    return wall, cpu, statistics.mean(hits)


def main() -> None:
    """Run the benchmark and print one line per figure."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--size", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--large-size", type=int, default=1_000_000)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    generator = torch.Generator().manual_seed(0)
    print(f"threads: {torch.get_num_threads()}, load average at start: {os.getloadavg()[0]:.1f}")

    wall, cpu, hit_rate = bench_training_step(args.size, args.batch, args.repeats, generator)
    verdict = "ok" if wall <= 0.015 else "MISSED"
    print(f"step (retrieve + triplet_loss + backward + update), batch {args.batch}, m = {args.size:,}, dist:")
    print(f"  {wall * 1e3:7.2f} ms wall, {cpu * 1e3:7.2f} ms cpu, median (target <= 15 ms wall): {verdict}")
    print(f"  update hit rate during the timed steps: {hit_rate:.2f}")

    start = time.perf_counter()
    large = ColorMemory(args.large_size, key_dim=512, feature="dist", seed=0)
    build = time.perf_counter() - start
    large.filled.fill_(True)  # stands in for a memory that training has filled: every slot is ranked
    q, _ = random_batch(args.batch, 512, generator)

    def retrieve() -> None:
        large._score_cache = None  # time the search itself, not the reuse of the last score matrix
        large.retrieve(q, 1)

    wall, cpu = time_call(retrieve, max(3, args.repeats // 10))
    key_bytes = large.keys.numel() * large.keys.element_size()
    value_bytes = large.values.numel() * large.values.element_size()
    verdict = "ok" if wall <= 0.5 else "MISSED"
    print(
        f"m = {args.large_size:,} (built in {build:.1f} s): keys {key_bytes / 2**30:.2f} GiB + values "
        f"{value_bytes / 2**30:.2f} GiB = {(key_bytes + value_bytes) / 2**30:.2f} GiB (float32)"
    )
    print(
        f"  retrieve top-1, {args.batch} queries: {wall:6.3f} s wall, {cpu:6.3f} s cpu, median "
        f"(target <= 0.5 s): {verdict}"
    )


if __name__ == "__main__":
    main()
