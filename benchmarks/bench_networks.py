"""Benchmark the colorization networks on CPU; prints parameter counts and timings.

Forward + backward time of the generator and of the discriminator, and images/s of one full G+D training
step (D step, then G step, Adam; the memory is not part of it), at default widths. Other processes sharing the
CPU make the figures noisy: compare runs made on a quiet machine.

    python benchmarks/bench_networks.py [--sizes 64 128] [--batch 16] [--cond-dim 313] [--threads 2]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

from memopainter.networks.discriminator import Discriminator
from memopainter.networks.generator import Generator
from memopainter.networks.losses import discriminator_loss, generator_loss


def time_call(fn: Callable[[], object], repeats: int) -> float:
    """Median wall time of fn() in seconds, after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def parameter_count(model: torch.nn.Module) -> int:
    """Number of parameters of a model."""
    return sum(p.numel() for p in model.parameters())


def bench_size(size: int, batch: int, cond_dim: int, repeats: int) -> None:
    """Print parameter counts, G and D forward + backward times and G+D step throughput at one image size."""
    generator, discriminator = Generator(size, cond_dim), Discriminator(size, cond_dim)
    cond = torch.rand(batch, cond_dim) if cond_dim else None
    L = torch.rand(batch, 1, size, size)
    real_ab = torch.rand(batch, 2, size, size) * 2 - 1
    g_opt = torch.optim.Adam(generator.parameters(), lr=1e-4, betas=(0.5, 0.999))
    d_opt = torch.optim.Adam(discriminator.parameters(), lr=1e-4, betas=(0.5, 0.999))

    def generator_pass() -> None:
        generator.zero_grad()
        generator(L, cond).square().mean().backward()

    def discriminator_pass() -> None:
        discriminator.zero_grad()
        discriminator(L, real_ab, cond).mean().backward()

    def training_step() -> None:
        fake_ab = generator(L, cond)
        d_opt.zero_grad()
        d_loss = discriminator_loss(discriminator(L, real_ab, cond), discriminator(L, fake_ab.detach(), cond))
        d_loss.backward()
        d_opt.step()
        g_opt.zero_grad()
        g_loss, _ = generator_loss(discriminator(L, fake_ab, cond), fake_ab, real_ab, 1.0, 1.0, 1.0)
        g_loss.backward()
        g_opt.step()

    g_time = time_call(generator_pass, repeats)
    d_time = time_call(discriminator_pass, repeats)
    step_time = time_call(training_step, repeats)
    print(
        f"size {size}: G {parameter_count(generator):,} params, D {parameter_count(discriminator):,} params; "
        f"batch {batch}: G fwd+bwd {g_time * 1000:.0f} ms, D fwd+bwd {d_time * 1000:.0f} ms, "
        f"G+D step {step_time * 1000:.0f} ms = {batch / step_time:.1f} images/s"
    )


def main() -> None:
    """Parse the options and run the benchmark at each size."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--cond-dim", type=int, default=313, help="313: distribution feature; 30: palette")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    for size in (64, 256):
        count = parameter_count(Generator(size, args.cond_dim))
        print(f"Generator(image_size={size}, cond_dim={args.cond_dim}) defaults: {count:,} parameters")
    for size in args.sizes:
        bench_size(size, args.batch, args.cond_dim, args.repeats)


if __name__ == "__main__":
    main()
