"""Benchmark a full training step of the default model and the share of it spent in the memory.

Target (CPU, 2 cores, batch 16): the memory's part of a step (query head, triplet loss and its step, memory
update) <= 15% of the step, at 64x64 and 128x128. Synthetic tensors stand in for a prepared dataset of
--images images (the memory holds 1.2x as many slots), so only the networks and the memory are timed.

    python benchmarks/bench_train.py [--sizes 64 128] [--images 1000] [--steps 10] [--threads 2]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from memopainter.config import RunConfig
from memopainter.core.model import build_model
from memopainter.training.steps import Batch, coloring_step, make_optimizers, memory_step

FEATURE_DIM = 1280  # the default backbone's (mobilenet_v2) pooled feature


def bench(size: int, images: int, batch: int, steps: int) -> None:
    """Time full steps and memory-only steps at one image size; print one line."""
    config = RunConfig()
    config.data.image_size = size
    config.train.batch_size = batch
    model = build_model(config, images, "mobilenet_v2", None, FEATURE_DIM)
    optimizers = make_optimizers(model, config)
    g = torch.Generator().manual_seed(0)
    gray = torch.rand(batch, 1, size, size, generator=g)
    ab = torch.rand(batch, 2, size, size, generator=g) * 2 - 1
    features = torch.rand(images, model.query_head.linear.in_features, generator=g)  # pooled + lightness
    colors = torch.softmax(torch.randn(images, 313, generator=g) * 3, -1)
    labels = torch.full((batch,), -1)
    # Fill the memory as a pass over the data would, so retrieval and updates see a used memory.
    for start in range(0, images, batch):
        idx = torch.arange(start, min(start + batch, images))
        with torch.no_grad():
            model.memory.update(model.query_head(features[idx]), colors[idx], sources=idx)
    step = coloring_step(config, ab, torch.device("cpu"))  # the default head's: rebalanced CE + L1
    full, mem = [], []
    for _ in range(steps + 1):
        idx = torch.randint(images, (batch,), generator=g)
        data = Batch(
            query_features=features[idx], color=colors[idx], sources=idx, labels=labels, gray=gray, ab=ab
        )
        start = time.perf_counter()
        memory_step(model.query_head, model.memory, optimizers.query_head, data)
        middle = time.perf_counter()
        step(model, optimizers, data, data.color)
        full.append(time.perf_counter() - start)
        mem.append(middle - start)
    t_full, t_mem = statistics.median(full[1:]), statistics.median(mem[1:])
    params = sum(p.numel() for p in model.generator.parameters()) / 1e6
    print(
        f"{size}x{size}: step {t_full * 1e3:7.1f} ms = {batch / t_full:6.1f} images/s; memory part "
        f"{t_mem * 1e3:5.1f} ms = {100 * t_mem / t_full:4.1f}% of the step (target <= 15%); "
        f"G {params:.2f} M params, memory {model.memory.size} slots"
    )


def main() -> None:
    """Parse options and run the benchmark."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128])
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    print(f"threads: {threads}, batch {args.batch}, default model, median of {args.steps} steps")
    for size in args.sizes:
        bench(size, args.images, args.batch, args.steps)


if __name__ == "__main__":
    main()
