"""Which ImageNet backbone should the query network use? Class retrieval from gray images, few-shot.

The memory retrieves colours by the similarity of query features, so a backbone is good for MemoPainter when
gray images of one class (one character, one unit: shared colours) lie close together in its feature space.
For each backbone this measures, on DATA_DIR (one sub-folder of colour images per class):

- leave-one-out top-1: each image's nearest other image by cosine similarity has its class;
- K-shot top-1: K random references per class (at most n - 1, so every class keeps a query), the rest are
  queries, nearest reference by cosine; mean +- std over seeded draws;
- feature extraction speed on this machine (images/s at batch --batch-size, CPU unless --device).

Images are shown to the backbones as they will be in MemoPainter: transparent pixels composited on white,
padded to a square with white, resized to the backbone's input size, then reduced to their lightness L
shown as gray RGB. A raw-pixel baseline (32 x 32 gray, mean-centred) shows what the features add.

    python benchmarks/choose_backbone.py /tmp/kenney_classes --shots 1 5
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps

from memopainter.color import rgb_to_gray
from memopainter.networks.backbones import BACKBONES, WeightsError, load_backbone

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".gif"}
PIXEL_BASELINE_SIZE = 32
SPEED_REPEATS = 5


def list_dataset(data_dir: Path) -> tuple[list[Path], np.ndarray, list[str]]:
    """Image paths, their class indices and the class names (sorted sub-folder names)."""
    classes = sorted(d.name for d in data_dir.iterdir() if d.is_dir())
    paths, labels = [], []
    for index, name in enumerate(classes):
        files = sorted(p for p in (data_dir / name).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if len(files) < 2:
            raise SystemExit(f"{data_dir / name}: a class needs at least 2 images, found {len(files)}")
        paths += files
        labels += [index] * len(files)
    if len(classes) < 2:
        raise SystemExit(f"{data_dir}: needs at least 2 class sub-folders, found {len(classes)}")
    return paths, np.array(labels), classes


def load_gray(path: Path, size: int) -> torch.Tensor:
    """One image as the query network sees it: (3, size, size) gray sRGB in [0, 1]."""
    with Image.open(path) as im:
        rgba = ImageOps.exif_transpose(im).convert("RGBA")
    white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    rgb = Image.alpha_composite(white, rgba).convert("RGB")
    side = max(rgb.size)
    square = Image.new("RGB", (side, side), (255, 255, 255))
    square.paste(rgb, ((side - rgb.width) // 2, (side - rgb.height) // 2))
    square = square.resize((size, size), Image.Resampling.BICUBIC)
    x = torch.from_numpy(np.asarray(square, dtype=np.float32) / 255.0).permute(2, 0, 1)
    return rgb_to_gray(x).clamp(0.0, 1.0)


def extract(name: str, images: torch.Tensor, batch_size: int, device: str) -> tuple[torch.Tensor, float]:
    """Pooled features (N, D) of one backbone, and its speed in images/s.

    The speed is the best of SPEED_REPEATS timings of one batch: the machine is shared, and the best run is
    the one least disturbed by other processes.
    """
    backbone = load_backbone(name, device=device)
    with torch.inference_mode():
        features = torch.cat([backbone(b.to(device)).cpu() for b in images.split(batch_size)])
        batch = images[:batch_size].to(device)
        timings = []
        for _ in range(SPEED_REPEATS):
            start = time.perf_counter()
            backbone(batch)
            if batch.is_cuda:
                torch.cuda.synchronize()
            timings.append(time.perf_counter() - start)
    return features, len(batch) / min(timings)


def pixel_features(images: torch.Tensor) -> torch.Tensor:
    """Baseline: the gray image at 32 x 32, flattened and mean-centred (N, 1024)."""
    small = F.interpolate(images[:, :1], size=PIXEL_BASELINE_SIZE, mode="area").flatten(1)
    return small - small.mean(dim=1, keepdim=True)


def cosine(features: torch.Tensor) -> np.ndarray:
    """Cosine similarity matrix (N, N)."""
    unit = F.normalize(features.double(), dim=1)
    return (unit @ unit.T).numpy()


def leave_one_out(sim: np.ndarray, labels: np.ndarray) -> float:
    """Share of images whose most similar other image has the same class."""
    sim = sim.copy()
    np.fill_diagonal(sim, -np.inf)
    return float(np.mean(labels[sim.argmax(axis=1)] == labels))


def k_shot(sim: np.ndarray, labels: np.ndarray, k: int, draws: int, seed: int) -> tuple[float, float]:
    """Mean and std over `draws` of top-1 accuracy with k references per class (at most n - 1)."""
    rng = np.random.default_rng(seed)
    accuracies = []
    for _ in range(draws):
        refs = []
        for c in np.unique(labels):
            members = rng.permutation(np.flatnonzero(labels == c))
            refs += members[: min(k, len(members) - 1)].tolist()
        refs = np.array(refs)
        queries = np.setdiff1d(np.arange(len(labels)), refs)
        nearest = refs[sim[np.ix_(queries, refs)].argmax(axis=1)]
        accuracies.append(np.mean(labels[nearest] == labels[queries]))
    return float(np.mean(accuracies)), float(np.std(accuracies))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("data_dir", type=Path, help="one sub-folder of colour images per class")
    names = [n for n in BACKBONES if n != "tiny"]
    parser.add_argument("--backbones", nargs="+", default=names, choices=sorted(BACKBONES), metavar="NAME")
    parser.add_argument(
        "--shots", nargs="+", type=int, default=[1, 5], metavar="K", help="references per class"
    )
    parser.add_argument("--draws", type=int, default=20, help="random reference draws per K (default 20)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    if not args.data_dir.is_dir():
        parser.error(f"DATA_DIR {args.data_dir} is not a folder")
    if min(args.shots) < 1 or args.draws < 1 or args.batch_size < 1:
        parser.error("--shots, --draws and --batch-size must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the measurement and print one table row per backbone."""
    args = parse_args(argv)
    paths, labels, classes = list_dataset(args.data_dir)
    counts = np.bincount(labels)
    print(
        f"{args.data_dir}: {len(paths)} images, {len(classes)} classes ({counts.min()}-{counts.max()} each), "
        f"chance about {1 / len(classes):.1%}; torch threads {torch.get_num_threads()}, device {args.device}"
    )
    gray_by_size: dict[int, torch.Tensor] = {}
    rows = []
    for name in ["pixels"] + args.backbones:
        size = BACKBONES[name].input_size if name != "pixels" else 224
        if size not in gray_by_size:
            gray_by_size[size] = torch.stack([load_gray(p, size) for p in paths])
        images = gray_by_size[size]
        if name == "pixels":
            features, speed = pixel_features(images), float("nan")
        else:
            try:
                features, speed = extract(name, images, args.batch_size, args.device)
            except WeightsError as exc:
                print(f"skipped {name}: {exc}", file=sys.stderr)
                continue
        sim = cosine(features)
        shots = [k_shot(sim, labels, k, args.draws, args.seed) for k in args.shots]
        rows.append((name, features.shape[1], size, leave_one_out(sim, labels), shots, speed))

    shot_heads = [f"{k}-shot top-1" for k in args.shots]
    print("| backbone | dim | size | leave-one-out top-1 | " + " | ".join(shot_heads) + " | images/s |")
    print("|---" * (5 + len(shot_heads)) + "|")
    for name, dim, size, loo, shots, speed in rows:
        cells = [f"{m:.1%} +- {s:.1%}" for m, s in shots]
        rate = "-" if np.isnan(speed) else f"{speed:.1f}"
        print(f"| {name} | {dim} | {size} | {loo:.1%} | " + " | ".join(cells) + f" | {rate} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
