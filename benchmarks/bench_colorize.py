"""Benchmark inference end to end (file in, PNG out) with the default model, after it is loaded.

Targets (CPU): one 1024x1024 image colorized (top-1) <= 0.4 s with each upsampler; 100 images of 256x256
with batching >= 20 images/s; peak memory growth for one 4096x4096 image <= 1.5 GB (VmHWM of a fresh
subprocess, its peak reset once the model is loaded and warm, so only the image's own work is counted).
The model is the default architecture at image size 64 (core.model.build_model) with its memory filled by
random writes, and the real default backbone when its weights are in the cache (`memopainter weights fetch
mobilenet_v2`), else the tiny test backbone. The machine may be shared: the figures are medians, and noisy.

    python benchmarks/bench_colorize.py [--threads 2] [--repeats 7] [--skip-peak]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from memopainter.config import RunConfig
from memopainter.core.checkpoint import save_checkpoint
from memopainter.core.model import build_model
from memopainter.data.images import load_image, save_png
from memopainter.inference import Colorizer
from memopainter.inference.batch import Job, colorize_jobs
from memopainter.inference.fullres import recombine
from memopainter.inference.upsample import UPSAMPLERS
from memopainter.networks.backbones import DEFAULT_BACKBONE, WeightsError, load_backbone

HERE = str(Path(__file__).resolve().parent)  # peak_memory.py, for the subprocess
TRAINING_IMAGES = 100  # the memory holds 1.2 x as many slots


def make_model(folder: Path) -> tuple[Path, str]:
    """A default model at image size 64 with a filled memory, saved in `folder`: (its path, backbone)."""
    try:
        backbone = load_backbone(DEFAULT_BACKBONE)
    except WeightsError:
        backbone = load_backbone("tiny")
    config = RunConfig()
    config.data.image_size = 64
    config.memory.backbone = backbone.name
    model = build_model(config, TRAINING_IMAGES, backbone.name, backbone.weights_sha256, backbone.feature_dim)
    g = torch.Generator().manual_seed(0)
    keys = torch.nn.functional.normalize(
        torch.randn(TRAINING_IMAGES, config.memory.key_dim, generator=g), dim=1
    )
    values = torch.softmax(torch.randn(TRAINING_IMAGES, 313, generator=g) * 3, dim=1)
    model.memory.update(keys, values, sources=torch.arange(TRAINING_IMAGES))
    model.source_paths = [f"image_{i}.png" for i in range(TRAINING_IMAGES)]
    model.source_classes = [-1] * TRAINING_IMAGES
    path = folder / "model.safetensors"
    save_checkpoint(path, model.tensors(), model.meta())
    return path, backbone.name


def synthetic_image(size: int, seed: int = 0) -> Image.Image:
    """A smooth color image with a few flat shapes: compresses like artwork, not like noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size
    rgb = np.stack([x, y, 0.5 + 0.5 * np.sin(6 * x + 3 * y)], axis=-1)
    for _ in range(6):
        cy, cx, r = rng.uniform(0.2, 0.8), rng.uniform(0.2, 0.8), rng.uniform(0.05, 0.2)
        rgb[(y - cy) ** 2 + (x - cx) ** 2 < r * r] = rng.uniform(0, 1, 3)
    return Image.fromarray((rgb * 255).astype(np.uint8), mode="RGB")


def flat_art_image(size: int, seed: int = 0) -> Image.Image:
    """Flat fills in a grid of cells outlined by black lines 1/256 of the side wide: a comic panel's shape."""
    rng = np.random.default_rng(seed)
    cells = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    rgb = cells.repeat(size // 16, 0).repeat(size // 16, 1)
    line = max(1, size // 256)
    for k in range(0, size, size // 16):
        rgb[k : k + line] = 0
        rgb[:, k : k + line] = 0
    return Image.fromarray(rgb, mode="RGB")


IMAGES = {"smooth": synthetic_image, "flat": flat_art_image}


def one_file(model: Colorizer, source: Path, target: Path, upsample: str) -> dict[str, float]:
    """Colorize one file top-1, timing each stage; returns seconds per stage."""
    times = {}
    start = time.perf_counter()
    rgb, alpha = load_image(source)
    times["load"] = time.perf_counter() - start
    start = time.perf_counter()
    prepared = model.prepare(rgb, alpha)
    del rgb, alpha
    times["prepare"] = time.perf_counter() - start
    start = time.perf_counter()
    ab = model.predict([prepared]).ab[0, 0]
    times["networks"] = time.perf_counter() - start
    start = time.perf_counter()
    image = recombine(prepared, ab, upsample)
    times["recombine"] = time.perf_counter() - start
    start = time.perf_counter()
    save_png(target, image)
    times["save"] = time.perf_counter() - start
    times["total"] = sum(times.values())
    return times


def bench_single(model: Colorizer, folder: Path, repeats: int, upsample: str, kind: str) -> None:
    """A 1024x1024 image, top-1, end to end."""
    source = folder / f"big-{kind}.png"
    IMAGES[kind](1024).save(source)
    one_file(model, source, folder / "out" / "warmup.png", upsample)
    runs = [one_file(model, source, folder / "out" / "big.png", upsample) for _ in range(repeats)]
    median = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
    stages = ", ".join(f"{key} {1e3 * value:.0f}" for key, value in median.items() if key != "total")
    print(f"1024x1024 {kind} top-1, {upsample}: {median['total']:.3f} s (target <= 0.4 s); ms: {stages}")


def bench_batch(model: Colorizer, folder: Path, count: int, batch_sizes: list[int]) -> None:
    """`count` images of 256x256 through the CLI's batch loop (load, networks, full size, save)."""
    inputs = folder / "many"
    inputs.mkdir()
    for i in range(count):
        synthetic_image(256, seed=i).save(inputs / f"{i:03d}.png")
    jobs = [Job(path, Path(path.name)) for path in sorted(inputs.glob("*.png"))]
    colorize_jobs(model, jobs[:8], folder / "warm", 1, None, 8)
    for batch in batch_sizes:
        start = time.perf_counter()
        done, failed = colorize_jobs(model, jobs, folder / f"out_b{batch}", 1, None, batch)
        seconds = time.perf_counter() - start
        assert done == count and not failed
        print(f"{count} x 256x256, batch {batch}: {count / seconds:.1f} images/s (target >= 20)")


PEAK_SCRIPT = """
import sys, time, torch
sys.path.insert(0, sys.argv[7])
from peak_memory import reset_peak, status
from pathlib import Path
from memopainter.inference import Colorizer
from memopainter.inference.batch import Job, colorize_jobs
torch.set_num_threads(int(sys.argv[4]))
model = Colorizer.from_pretrained(sys.argv[1])
source, small, out = Path(sys.argv[2]), Path(sys.argv[5]), Path(sys.argv[3])
colorize_jobs(model, [Job(small, Path("warm.png"))], out, 1, None, 1)

base, reset = reset_peak()
start = time.perf_counter()
colorize_jobs(model, [Job(source, Path("huge.png"))], out, 1, None, 1, sys.argv[6])
seconds = time.perf_counter() - start
print(base, status("VmHWM:"), seconds, reset)
"""


def bench_peak(model_path: Path, folder: Path, threads: int, upsample: str, kind: str) -> None:
    """Peak RSS growth of a fresh process colorizing one 4096x4096 file (file in, PNG out)."""
    source, small = folder / f"huge-{kind}.png", folder / "small.png"
    IMAGES[kind](4096).save(source)
    synthetic_image(256).save(small)
    args = [str(model_path), str(source), str(folder / "peak"), str(threads), str(small), upsample, HERE]
    result = subprocess.run([sys.executable, "-c", PEAK_SCRIPT, *args], capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(result.stderr.strip().splitlines()[-1])
    base, peak, seconds, reset = result.stdout.split()
    growth = (int(peak) - int(base)) / 2**30
    note = "" if reset == "True" else " (VmHWM could not be reset: includes the model's load)"
    print(
        f"4096x4096 {kind}, {upsample}: peak RSS growth {growth:.2f} GB (target <= 1.5 GB) over "
        f"{int(base) / 2**30:.2f} GB after loading; {float(seconds):.1f} s end to end{note}"
    )


def main() -> None:
    """Parse options and run the three measurements."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--skip-peak", action="store_true", help="skip the 4096x4096 memory measurement")
    parser.add_argument("--upsample", nargs="+", choices=UPSAMPLERS, default=list(UPSAMPLERS))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="bench-colorize-") as tmp:
        folder = Path(tmp)
        model_path, backbone = make_model(folder)
        model = Colorizer.from_pretrained(model_path)
        print(
            f"default model at 64x64, backbone {backbone}, {args.threads} threads, torch {torch.__version__}"
        )
        for kind in IMAGES:
            for upsample in args.upsample:
                bench_single(model, folder, args.repeats, upsample, kind)
        bench_batch(model, folder, args.images, args.batch_sizes)
        for kind in [] if args.skip_peak else IMAGES:
            for upsample in args.upsample:
                bench_peak(model_path, folder, args.threads, upsample, kind)


if __name__ == "__main__":
    main()
