"""The paper's Table 2: top-1 retrieval accuracy of the memory in N-way K-shot episodes.

Each episode draws N classes among those with at least K + 1 images, K training images of each and the
rest (or up to `test_per_class`) as held-out queries. A fresh query head and memory (no GAN) are trained
on the N x K shots with the training loop's memory step (training.steps.memory_step): a threshold
triplet step on the head (Adam), then a memory write. A held-out query is correct when its top-1 slot was
written by a training image of its class. The same episodes are run unsupervised (threshold triplet loss,
color matches) and supervised (label matches, the paper's upper bound), so the two rows are paired.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from memopainter.data.dataset import TrainingData, load_training_data
from memopainter.evaluation.outputs import figure_png
from memopainter.experiments.statistics import t_interval
from memopainter.files import write_bytes, write_json, write_text
from memopainter.memory import ColorMemory, QueryHead, default_memory_size
from memopainter.networks.backbones import load_backbone
from memopainter.training.steps import MemoryBatch, memory_step

MODES = ("unsupervised", "supervised")
# Table 2 of the paper (percent), by (ways, shots).
PAPER_TABLE2 = {
    "unsupervised": {(5, 5): 87.50, (5, 10): 87.50, (15, 5): 69.44, (15, 10): 70.83},
    "supervised": {(5, 5): 91.66, (5, 10): 87.50, (15, 5): 72.22, (15, 10): 75.00},
}
FEATURE_IMAGE_SIZE = 32  # episodes read only the cached features; the unused image tensors stay small
INTERVAL = "95% Student t-interval over episodes: mean +- t(0.975, E - 1) x sd / sqrt(E), clipped to [0, 100]"


class EpisodeError(ValueError):
    """The data cannot supply the requested episodes (too few classes with enough images)."""


@dataclass(frozen=True)
class RetrievalSettings:
    """How each episode's memory is trained; defaults follow the paper and the public reimplementation."""

    epochs: int = 10  # passes over the N x K shots; the head moves little at lr 1e-4, the memory fills in 1
    batch_size: int = 4  # the public reimplementation's batch
    lr: float = 1e-4  # Adam, as the paper's memory
    key_dim: int = 512
    feature: str = "dist"  # which color feature the unsupervised matches compare
    threshold: float | None = None  # None: the feature's default
    test_per_class: int | None = None  # None: every image not drawn as a shot

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "key_dim"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr!r}")
        if self.test_per_class is not None and self.test_per_class < 1:
            raise ValueError(f"test_per_class must be >= 1 or None, got {self.test_per_class!r}")


@dataclass(frozen=True)
class Episode:
    """Indices into the dataset of one episode's shots and held-out queries, and their episode labels."""

    classes: list[int]  # dataset class indices, sorted
    train: list[int]  # (N * K,) dataset rows
    train_labels: list[int]  # episode label (position in `classes`) of each training row
    test: list[int]
    test_labels: list[int]


@dataclass
class Cell:
    """One (ways, shots, mode) cell of the table: per-episode accuracies and their summary."""

    ways: int
    shots: int
    mode: str
    accuracies: list[float] = field(default_factory=list)

    def summary(self) -> dict[str, float | None]:
        """Mean and 95% t-interval of the accuracies, clipped to [0, 1] (None with fewer than 2 episodes)."""
        mean, low, high = t_interval(self.accuracies)
        if low is not None:  # an accuracy lies in [0, 1]: the t-interval's normal tails may reach past it
            low, high = max(0.0, low), min(1.0, high)
        return {"mean": mean, "ci_low": low, "ci_high": high}


@dataclass
class RetrievalResult:
    """Every cell of the experiment and what it ran on."""

    settings: RetrievalSettings
    episodes: int
    seed: int
    num_images: int
    class_sizes: dict[str, int]
    eligible: dict[int, int]  # shots -> number of classes with at least shots + 1 images
    cells: list[Cell]

    def to_dict(self) -> dict:
        """Plain values for JSON; accuracies are fractions in [0, 1]."""
        return {
            "experiment": "retrieval",
            "interval": INTERVAL,
            "settings": asdict(self.settings),
            "episodes": self.episodes,
            "seed": self.seed,
            "num_images": self.num_images,
            "class_sizes": self.class_sizes,
            "eligible_classes": {str(k): v for k, v in self.eligible.items()},
            "cells": [{**asdict(cell), **cell.summary()} for cell in self.cells],
            "paper_percent": {
                mode: {f"{w}-way {s}-shot": v for (w, s), v in table.items()}
                for mode, table in PAPER_TABLE2.items()
            },
        }


def retrieval_features(
    data_dir: str | Path,
    feature: str,
    backbone: str,
    descriptors: str,
    lightness_bins: int,
    weights: str | Path | None = None,
    progress: Callable[[str], None] | None = None,
) -> TrainingData:
    """DATA's query descriptors, color features and labels, all that the episodes read; cached on disk, so
    a later run on the same data starts at once. Raises WeightsError, ValueError or OSError."""
    return load_training_data(
        data_dir,
        FEATURE_IMAGE_SIZE,
        feature,
        load_backbone(backbone, weights=weights),
        progress=progress,
        descriptors=descriptors,
        lightness_bins=lightness_bins,
    )


def eligible_classes(labels: torch.Tensor, shots: int) -> list[int]:
    """Class indices with at least `shots` + 1 images (K to train, one to test); labels (N,), -1 ignored."""
    counts = torch.bincount(labels[labels >= 0])
    return [c for c, n in enumerate(counts.tolist()) if n >= shots + 1]


def draw_episode(
    labels: torch.Tensor,
    ways: int,
    shots: int,
    rng: random.Random,
    test_per_class: int | None = None,
    class_names: list[str] | None = None,
) -> Episode:
    """Draw `ways` classes among the eligible ones, `shots` training rows of each and held-out test rows."""
    eligible = eligible_classes(labels, shots)
    if len(eligible) < ways:
        raise EpisodeError(_too_few_message(labels, ways, shots, len(eligible), class_names))
    classes = sorted(rng.sample(eligible, ways))
    train, train_labels, test, test_labels = [], [], [], []
    for episode_label, c in enumerate(classes):
        rows = rng.sample((labels == c).nonzero().flatten().tolist(), int((labels == c).sum()))
        held_out = rows[shots:] if test_per_class is None else rows[shots : shots + test_per_class]
        train += rows[:shots]
        train_labels += [episode_label] * shots
        test += held_out
        test_labels += [episode_label] * len(held_out)
    return Episode(classes, train, train_labels, test, test_labels)


def run_episode(
    query_features: torch.Tensor,
    color: torch.Tensor,
    episode: Episode,
    supervised: bool,
    settings: RetrievalSettings,
    seed: int,
) -> float:
    """Train a fresh head and memory on the episode's shots; return the top-1 accuracy on its test rows."""
    torch.manual_seed(seed)
    head = QueryHead(query_features.shape[1], settings.key_dim)
    optimizer = torch.optim.Adam(head.parameters(), lr=settings.lr)
    memory = ColorMemory(
        default_memory_size(len(episode.train)),
        settings.key_dim,
        feature=settings.feature,
        threshold=settings.threshold,
        supervised=supervised,
        seed=seed,
    )
    train = torch.tensor(episode.train)
    train_labels = torch.tensor(episode.train_labels)
    shuffle = torch.Generator().manual_seed(seed)
    for _ in range(settings.epochs):
        order = torch.randperm(len(train), generator=shuffle)
        for start in range(0, len(order), settings.batch_size):
            batch = order[start : start + settings.batch_size]
            rows = train[batch]
            # The slot's source is the position in `train`, so its episode label is one lookup away.
            inputs = MemoryBatch(query_features[rows], color[rows], sources=batch, labels=train_labels[batch])
            memory_step(head, memory, optimizer, inputs)
    with torch.no_grad():
        q = head(query_features[torch.tensor(episode.test)])  # (T, key_dim)
        _, slots = memory.retrieve(q, 1)  # (T, 1)
    predicted = train_labels[memory.sources[slots[:, 0]]]  # (T,)
    return float((predicted == torch.tensor(episode.test_labels)).float().mean())


def retrieval_experiment(
    query_features: torch.Tensor,
    color: torch.Tensor,
    labels: torch.Tensor,
    class_names: list[str],
    ways: list[int],
    shots: list[int],
    episodes: int,
    seed: int = 0,
    settings: RetrievalSettings | None = None,
    progress: Callable[[str], None] | None = None,
) -> RetrievalResult:
    """Run `episodes` episodes per (ways, shots), each unsupervised and supervised; rows are images.

    query_features (N, F) cached backbone features, color (N, value_dim) color features, labels (N,) class
    indices into class_names (-1: no class, never drawn). Episode e of (ways, shots) is drawn from
    random.Random(f"{seed}/{ways}/{shots}/{e}"), so a cell does not depend on which other cells run.
    """
    settings = settings or RetrievalSettings()
    _check_request(query_features, color, labels, class_names, ways, shots, episodes)
    cells = []
    for w in ways:
        for s in shots:
            pair = [Cell(w, s, mode) for mode in MODES]
            for e in range(episodes):
                rng = random.Random(f"{seed}/{w}/{s}/{e}")
                episode = draw_episode(labels, w, s, rng, settings.test_per_class)
                episode_seed = random.Random(f"{seed}/{w}/{s}/{e}/torch").getrandbits(62)
                for cell in pair:
                    supervised = cell.mode == "supervised"
                    cell.accuracies.append(
                        run_episode(query_features, color, episode, supervised, settings, episode_seed)
                    )
            if progress is not None:
                means = ", ".join(f"{c.mode} {100 * c.summary()['mean']:.1f}%" for c in pair)
                progress(f"{w}-way {s}-shot, {episodes} episodes: {means}")
            cells += pair
    counts = torch.bincount(labels[labels >= 0], minlength=len(class_names)).tolist()
    return RetrievalResult(
        settings,
        episodes,
        seed,
        int(labels.shape[0]),
        dict(zip(class_names, counts, strict=True)),
        {s: len(eligible_classes(labels, s)) for s in shots},
        cells,
    )


def _check_request(
    query_features: torch.Tensor,
    color: torch.Tensor,
    labels: torch.Tensor,
    class_names: list[str],
    ways: list[int],
    shots: list[int],
    episodes: int,
) -> None:
    """Refuse, in one line, arguments no experiment can run on, before any episode is trained."""
    if isinstance(episodes, bool) or not isinstance(episodes, int) or episodes < 1:
        raise ValueError(f"episodes must be a positive int, got {episodes!r}")
    if not (query_features.shape[0] == color.shape[0] == labels.shape[0]):
        raise ValueError(
            f"query_features, color and labels must have one row per image, got {query_features.shape[0]}, "
            f"{color.shape[0]} and {labels.shape[0]}"
        )
    for name, values in (("ways", ways), ("shots", shots)):
        if not values or any(isinstance(x, bool) or not isinstance(x, int) or x < 1 for x in values):
            raise ValueError(f"{name} must be a non-empty list of positive ints, got {values!r}")
    for w in ways:
        if w < 2:
            raise ValueError(f"ways must be at least 2 for retrieval to be a choice, got {w}")
        for s in shots:
            found = len(eligible_classes(labels, s))
            if found < w:
                raise EpisodeError(_too_few_message(labels, w, s, found, class_names))


def write_retrieval(result: RetrievalResult, out: str | Path, data: str, command: str) -> list[Path]:
    """Write out/retrieval.md (Table 2 layout), retrieval.json and retrieval.png; returns the paths."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    body = {"data": data, "command": command, **result.to_dict()}
    paths = [out / "retrieval.md", out / "retrieval.json", out / "retrieval.png"]
    write_text(paths[0], markdown_table(result, data, command))
    write_json(paths[1], body)
    write_bytes(paths[2], plot_png(result))
    return paths


def markdown_table(result: RetrievalResult, data: str, command: str) -> str:
    """The paper's Table 2 layout: one column per (ways, shots), our rows with intervals, then the paper's."""
    columns = sorted({(c.ways, c.shots) for c in result.cells})
    by_key = {(c.ways, c.shots, c.mode): c for c in result.cells}
    header = "| | " + " | ".join(f"{w}-way {s}-shot" for w, s in columns) + " |"
    lines = [
        "# Retrieval accuracy of the memory (paper Table 2)",
        "",
        f"Data: `{data}` ({result.num_images} images, {len(result.class_sizes)} classes). "
        f"Command: `{command}`",
        "",
        header,
        "|---" * (len(columns) + 1) + "|",
    ]
    for mode in MODES:
        cells = []
        for w, s in columns:
            summary = by_key[(w, s, mode)].summary()
            interval = (
                ""
                if summary["ci_low"] is None
                else f" [{100 * summary['ci_low']:.1f}, {100 * summary['ci_high']:.1f}]"
            )
            cells.append(f"{100 * summary['mean']:.1f}%{interval}")
        lines.append(f"| Ours ({mode}) | " + " | ".join(cells) + " |")
    for mode in MODES:
        paper = [PAPER_TABLE2[mode].get(key) for key in columns]
        cells = ["n/a" if v is None else f"{v:.2f}%" for v in paper]
        lines.append(f"| Paper ({mode}) | " + " | ".join(cells) + " |")
    eligible = ", ".join(f"{n} for {s}-shot" for s, n in sorted(result.eligible.items()))
    settings = result.settings
    test = "all other images" if settings.test_per_class is None else f"up to {settings.test_per_class}"
    lines += [
        "",
        f"Mean top-1 accuracy over {result.episodes} episodes (seed {result.seed}), with the {INTERVAL}. "
        "A held-out query is correct when its top-1 memory slot was written by a training image of its "
        "class. The unsupervised and supervised rows use the same episodes.",
        "",
        "Each episode draws N classes among those with at least K + 1 images "
        f"(eligible classes: {eligible}), K shots per class and, as queries, {test} of each class. "
        "A fresh query head (Linear on cached "
        f"backbone features) and memory of 1.2 x N x K slots are trained for {settings.epochs} epochs in "
        f"batches of {settings.batch_size}: per batch a threshold triplet step (Adam, lr {settings.lr:g}) "
        f"then a memory write; no GAN. Color feature: {settings.feature}, threshold "
        f"{'default' if settings.threshold is None else settings.threshold}, key_dim {settings.key_dim}.",
        "",
    ]
    return "\n".join(lines)


def plot_png(result: RetrievalResult) -> bytes:
    """Bar chart of mean accuracy with 95% intervals per (ways, shots), ours against the paper, as PNG."""
    from matplotlib.figure import Figure

    columns = sorted({(c.ways, c.shots) for c in result.cells})
    by_key = {(c.ways, c.shots, c.mode): c for c in result.cells}
    figure = Figure(figsize=(1.8 + 1.6 * len(columns), 3.6), dpi=100)
    axes = figure.add_subplot()
    width = 0.2
    for i, mode in enumerate(MODES):
        xs = [j + (i - 1.5) * width for j in range(len(columns))]
        summaries = [by_key[(w, s, mode)].summary() for w, s in columns]
        means = [100 * m["mean"] for m in summaries]
        errors = [
            [0.0 if m["ci_low"] is None else 100 * (m["mean"] - m["ci_low"]) for m in summaries],
            [0.0 if m["ci_high"] is None else 100 * (m["ci_high"] - m["mean"]) for m in summaries],
        ]
        axes.bar(xs, means, width, yerr=errors, capsize=3, label=f"ours, {mode}")
        paper = [PAPER_TABLE2[mode].get(key, 0.0) for key in columns]
        axes.bar([x + 2 * width for x in xs], paper, width, alpha=0.45, label=f"paper, {mode}")
    axes.set_xticks(range(len(columns)), [f"{w}-way {s}-shot" for w, s in columns])
    axes.set_ylabel("top-1 retrieval accuracy (%)")
    axes.set_ylim(0, 118)  # headroom for the legend above the bars
    axes.legend(fontsize=7, loc="upper center", ncol=4)
    figure.tight_layout()
    return figure_png(figure)


def _too_few_message(
    labels: torch.Tensor, ways: int, shots: int, found: int, class_names: list[str] | None
) -> str:
    """One line: how many classes have K + 1 images, against the N needed, naming the smallest class."""
    counts = torch.bincount(labels[labels >= 0])
    smallest = int(counts.argmin()) if counts.numel() else -1
    name = class_names[smallest] if class_names and smallest >= 0 else str(smallest)
    small = f"; smallest class {name!r} has {int(counts[smallest])}" if smallest >= 0 else ""
    return (
        f"only {found} classes have at least --shots {shots} + 1 = {shots + 1} images (K to train, one to "
        f"test), fewer than --ways {ways}{small}"
    )
