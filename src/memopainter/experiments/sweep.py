"""The paper's Fig. 9: colorization error against memory size and color threshold.

The generator is trained on ground-truth color features (as the paper), and nothing the memory does touches
its training (`memory_step` uses no global random state), so a run's generator is the same whatever the
memory's size or threshold. The sweep therefore trains MemoPainter once on SPLIT/train, then for every
(size, threshold) trains a fresh query head and memory by replaying exactly the memory's part of that run,
batch by batch, and evaluates the result on SPLIT/test. Each cell is what a full training run with those
settings would give (the tests check both claims bitwise), at a few percent of the cost.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import torch

from memopainter.config import RunConfig
from memopainter.core.model import build_model, memory_arguments
from memopainter.data.dataset import TrainingData, load_training_data
from memopainter.evaluation.evaluate import evaluate
from memopainter.evaluation.outputs import figure_png
from memopainter.experiments.methods import Say, SharedSettings, method_config, split_dirs, train_and_evaluate
from memopainter.files import write_bytes, write_json, write_text
from memopainter.inference import Colorizer
from memopainter.memory import ColorMemory, QueryHead
from memopainter.training.loop import batch_rows, total_steps
from memopainter.training.steps import MemoryBatch, memory_step


@dataclass(frozen=True)
class Cell:
    """One (memory size, threshold) point and its scores on the test split."""

    size: int
    threshold: float
    delta_e2000: float
    delta_e2000_best_of_k: float
    retrieval_top1_accuracy: float | None
    slots_filled: int


@dataclass
class SweepResult:
    """Every cell of the sweep, and the run whose generator they share."""

    split: str
    shared: SharedSettings
    feature: str
    train_images: int
    default_size: int
    default_threshold: float
    base_run: str
    cells: list[Cell]

    def to_dict(self) -> dict:
        """Plain values for JSON."""
        return {
            "experiment": "sweep",
            "split": self.split,
            "shared": self.shared.to_dict(),
            "feature": self.feature,
            "train_images": self.train_images,
            "default_size": self.default_size,
            "default_threshold": self.default_threshold,
            "base_run": self.base_run,
            "cells": [cell.__dict__ for cell in self.cells],
        }


def replay_memory(config: RunConfig, data: TrainingData, backbone_dim: int) -> tuple[QueryHead, ColorMemory]:
    """The query head and memory a full training run of `config` on `data` ends with, trained alone.

    `backbone_dim` is the backbone's pooled feature size, as for build_model.
    """
    # build_model seeds and initialises exactly as train() does, so the head starts from the same weights.
    model = build_model(config, len(data), None, None, backbone_dim)
    optimizer = torch.optim.Adam(model.query_head.parameters(), lr=config.memory.lr)
    batch = min(config.train.batch_size, len(data))
    for step in range(total_steps(config, len(data))):
        rows = batch_rows(config, len(data), batch, step)
        inputs = MemoryBatch(data.query_features[rows], data.color[rows], rows, data.labels[rows])
        memory_step(model.query_head, model.memory, optimizer, inputs)
    return model.query_head, model.memory


def sweep_experiment(
    split: str | Path,
    out: str | Path,
    shared: SharedSettings,
    sizes: list[int],
    thresholds: list[float],
    feature: str = "dist",
    say: Say = print,
) -> SweepResult:
    """Train MemoPainter once on split/train, then score every (size, threshold) memory on split/test."""
    split, out = Path(split), Path(out)
    if any(s < 1 for s in sizes) or any(not t > 0 for t in thresholds) or not sizes or not thresholds:
        raise ValueError("memory sizes must be integers >= 1 and thresholds numbers > 0, at least one each")
    method = "memopainter-dist" if feature == "dist" else "memopainter-rgb"
    base = method_config(method, shared)
    points = [(s, t) for s in sizes for t in thresholds]
    configs = [
        method_config(method, shared, (f"memory.size={s}", f"memory.threshold={t}")) for s, t in points
    ]
    train_dir, test_dir = split_dirs(split)
    run = out / "runs" / method
    outcome = train_and_evaluate(method, base, train_dir, test_dir, run, shared.top_k, say=say)
    colorizer = Colorizer.from_pretrained(run, device="cpu")
    data = load_training_data(
        train_dir,
        base.data.image_size,
        feature,
        colorizer.backbone,
        progress=say,
        descriptors=base.memory.descriptors,
        lightness_bins=base.memory.lightness_bins,
        input_mode=base.data.input,
        lineart_dir=base.data.lineart or None,
    )
    defaults = memory_arguments(base, len(data))
    default_threshold = colorizer.model.memory.threshold
    cells = []
    for (size, threshold), config in zip(points, configs, strict=True):
        head, memory = replay_memory(config, data, colorizer.backbone.feature_dim)
        cell = _score(colorizer, head, memory, test_dir, shared.top_k, size, threshold)
        cells.append(cell)
        say(
            f"memory {size} slots, threshold {threshold:g}: delta_e2000 {cell.delta_e2000:.2f} "
            f"({cell.slots_filled} slots written)"
        )
    return SweepResult(
        str(split),
        shared,
        feature,
        len(data),
        defaults["size"],
        default_threshold,
        str(outcome.run),
        cells,
    )


def _score(
    colorizer: Colorizer,
    head: QueryHead,
    memory: ColorMemory,
    test_dir: Path,
    top_k: int,
    size: int,
    threshold: float,
) -> Cell:
    """Evaluate the trained generator with this head and memory in place of its own."""
    memopainter = replace(colorizer.model, query_head=head.eval(), memory=memory)
    swapped = colorizer.with_model(memopainter, colorizer.path)
    k = min(top_k, memory.num_filled)
    summary = evaluate(swapped, test_dir, k).summary()
    return Cell(
        size,
        threshold,
        summary["delta_e2000"],
        summary["delta_e2000_best_of_k"],
        summary["retrieval_top1_accuracy"],
        memory.num_filled,
    )


def write_sweep(result: SweepResult, out: str | Path, command: str) -> list[Path]:
    """Write out/sweep.md, sweep.json and sweep.png (delta_e2000 against memory size per threshold)."""
    out = Path(out)
    paths = [out / name for name in ("sweep.md", "sweep.json", "sweep.png")]
    write_text(paths[0], sweep_markdown(result, command))
    write_json(paths[1], {"command": command, **result.to_dict()})
    write_bytes(paths[2], _plot(result))
    return paths


def sweep_markdown(result: SweepResult, command: str) -> str:
    """delta_e2000 (and best of k, retrieval accuracy) per memory size (rows) and threshold (columns)."""
    sizes = sorted({c.size for c in result.cells})
    thresholds = sorted({c.threshold for c in result.cells})
    by_key = {(c.size, c.threshold): c for c in result.cells}
    k = result.shared.top_k
    lines = [
        "# Memory size and color threshold (paper Fig. 9)",
        "",
        f"Split: `{result.split}` ({result.train_images} training images). Command: `{command}`",
        "",
        f"Mean CIEDE2000 of the top-1 coloring on the test images (best of {k} / retrieval top-1 accuracy in "
        "brackets), lower is better. Feature "
        f"`{result.feature}`; default memory size {result.default_size} slots (1.2 x the training images), "
        f"default threshold {result.default_threshold:g}.",
        "",
        "| memory size | " + " | ".join(f"threshold {t:g}" for t in thresholds) + " |",
        "|---" * (len(thresholds) + 1) + "|",
    ]
    for size in sizes:
        row = []
        for t in thresholds:
            c = by_key[(size, t)]
            accuracy = "–" if c.retrieval_top1_accuracy is None else f"{100 * c.retrieval_top1_accuracy:.0f}%"
            row.append(f"{c.delta_e2000:.2f} ({c.delta_e2000_best_of_k:.2f} / {accuracy})")
        lines.append(f"| {size} | " + " | ".join(row) + " |")
    lines += [
        "",
        f"One generator, trained once ({result.shared.steps} steps of batch {result.shared.batch_size} at "
        f"{result.shared.image_size}x{result.shared.image_size}, seed {result.shared.seed}; run "
        f"`{result.base_run}`). For each cell a fresh query head and memory replay the memory's part of that "
        "run batch by batch with the cell's settings: the same result as a full training run with those "
        "settings, since the generator is trained on ground-truth color features and does not depend on the "
        "memory.",
        "",
    ]
    return "\n".join(lines)


def _plot(result: SweepResult) -> bytes:
    """delta_e2000 against memory size (log axis), one line per threshold, as PNG."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6.0, 3.6), dpi=100, layout="constrained")
    axes = figure.add_subplot()
    for t in sorted({c.threshold for c in result.cells}):
        cells = sorted((c for c in result.cells if c.threshold == t), key=lambda c: c.size)
        axes.plot(
            [c.size for c in cells], [c.delta_e2000 for c in cells], marker="o", label=f"threshold {t:g}"
        )
    axes.axvline(result.default_size, color="gray", linestyle=":", label="default size")
    if len({c.size for c in result.cells}) > 1:
        axes.set_xscale("log")
    axes.set_xlabel("memory size (slots)")
    axes.set_ylabel("mean CIEDE2000 (lower is better)")
    axes.legend(frameon=False, fontsize=8)
    return figure_png(figure)
