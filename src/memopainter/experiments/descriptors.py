"""Query descriptors compared: each set's retrieval and colorization on one trained generator, over seeds.

A set with the lightness histogram is tried with each of the given bin counts.

The generator trains on ground-truth color features and does not depend on the memory (see sweep), so for
each descriptor set and seed a fresh query head and memory replay the memory's part of a training run of the
model's length with that set and seed, exactly as a full run would, and the model's own generator colorizes
the test images from them. Differences to the first set are paired per image and seed.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from memopainter.config import RunConfig
from memopainter.data.dataset import load_training_data
from memopainter.data.descriptors import LIGHTNESS_BINS, parse_descriptors
from memopainter.evaluation.evaluate import evaluate, list_test_images
from memopainter.experiments.methods import split_dirs
from memopainter.experiments.statistics import format_interval, t_interval
from memopainter.experiments.sweep import replay_memory
from memopainter.files import write_json, write_text
from memopainter.inference import Colorizer

TOP_K = 3  # colorings per image, for best of 3 and the rank of the right class


@dataclass
class Trial:
    """One descriptor set under one seed."""

    descriptors: str  # the set and, with a lightness histogram, its bins: "pooled+lightness (32 bins)"
    seed: int
    delta_e2000: float
    best_of_3: float
    top1: float  # share of test images whose top-1 slot was written by their own class
    slots: int  # written slots
    most_slots_one_class: int  # the largest number of slots held by one class
    per_image: list[float]  # delta_e2000 of each test image, in the evaluation's order


def descriptor_trials(
    model: str | Path,
    split: str | Path,
    sets: list[str],
    seeds: list[int],
    say: Callable[[str], None] = print,
    lightness_bins: tuple[int, ...] = (LIGHTNESS_BINS,),
) -> list[Trial]:
    """Replay the memory with every descriptor set (and bin count) and seed, and score each on split/test."""
    train_dir, test_dir = split_dirs(Path(split))
    if all(path.parent == test_dir for path in list_test_images(test_dir)):
        raise ValueError(f"{test_dir}: retrieval is scored by class: its test images need class folders")
    colorizer = Colorizer.from_pretrained(model)
    base = colorizer.model.config
    trials = []
    for descriptors, bins, label in _variants(sets, lightness_bins):
        data = load_training_data(
            train_dir,
            base.data.image_size,
            base.data.feature,
            colorizer.backbone,
            descriptors=descriptors,
            lightness_bins=bins,
            input_mode=base.data.input,
            lineart_dir=base.data.lineart or None,
        )
        for seed in seeds:
            config = RunConfig.from_dict(base.to_dict()).override(
                [f"memory.descriptors={descriptors}", f"memory.lightness_bins={bins}", f"train.seed={seed}"]
            )
            head, memory = replay_memory(config, data, colorizer.backbone.feature_dim)
            swapped = replace(colorizer.model, config=config, query_head=head.eval(), memory=memory)
            k = min(TOP_K, memory.num_filled)  # a tiny split may write fewer slots than TOP_K
            evaluation = evaluate(colorizer.with_model(swapped, colorizer.path), test_dir, k)
            summary = evaluation.summary()
            classes = Counter(int(data.labels[s]) for s in memory.sources[memory.filled].tolist())
            trial = Trial(
                label,
                seed,
                summary["delta_e2000"],
                summary["delta_e2000_best_of_k"],
                summary["retrieval_top1_accuracy"],
                memory.num_filled,
                max(classes.values()),
                [s.metrics.delta_e2000 for s in evaluation.per_image],
            )
            trials.append(trial)
            say(f"{label} seed {seed}: delta_e2000 {trial.delta_e2000:.2f}, top-1 {trial.top1:.0%}")
    return trials


def _variants(sets: list[str], lightness_bins: tuple[int, ...]) -> list[tuple[str, int, str]]:
    """(descriptors, bins, label) to try: a set with a lightness histogram once per bin count, others once."""
    variants = []
    for descriptors in sets:
        if "lightness" in parse_descriptors(descriptors):
            variants += [(descriptors, bins, f"{descriptors} ({bins} bins)") for bins in lightness_bins]
        else:
            variants.append((descriptors, lightness_bins[0], descriptors))
    return variants


def write_descriptors(trials: list[Trial], out: str | Path, command: str) -> list[Path]:
    """out/descriptors.md (mean and spread over seeds, paired differences) and out/descriptors.json."""
    out = Path(out)
    paths = [out / "descriptors.md", out / "descriptors.json"]
    sets = list(dict.fromkeys(t.descriptors for t in trials))
    lines = [
        "# Query descriptors",
        "",
        f"Command: `{command}`. Mean over seeds (min to max in brackets); same-class top-1: the top-1 slot "
        "was written by a training image of the test image's class; paired difference: per image and seed, "
        f"against `{sets[0]}`, with its 95% t-interval.",
        "",
        "| descriptors | delta_e2000 | best of 3 | same-class top-1 | slots written | "
        "most slots of one class | paired delta_e2000 difference |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in sets:
        mine = [t for t in trials if t.descriptors == name]
        lines.append(
            f"| {name} | {_spread([t.delta_e2000 for t in mine], '.2f')} | "
            f"{_spread([t.best_of_3 for t in mine], '.2f')} | "
            f"{_spread([100 * t.top1 for t in mine], '.0f', '%')} | "
            f"{_spread([t.slots for t in mine], '.0f')} | "
            f"{_spread([t.most_slots_one_class for t in mine], '.0f')} | {_paired(trials, sets[0], name)} |"
        )
    write_text(paths[0], "\n".join(lines) + "\n")
    write_json(paths[1], {"command": command, "trials": [asdict(t) for t in trials]})
    return paths


def _spread(values: list[float], spec: str, unit: str = "") -> str:
    mean = statistics.fmean(values)
    return f"{mean:{spec}}{unit} ({min(values):{spec}} to {max(values):{spec}})"


def _paired(trials: list[Trial], reference: str, name: str) -> str:
    if name == reference:
        return "–"
    differences = []
    for ours in (t for t in trials if t.descriptors == name):
        theirs = next(t for t in trials if t.descriptors == reference and t.seed == ours.seed)
        differences += [a - b for a, b in zip(ours.per_image, theirs.per_image, strict=True)]
    return format_interval(*t_interval(differences))
