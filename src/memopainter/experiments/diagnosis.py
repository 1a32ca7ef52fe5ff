"""Why retrieval misses: per class, how often the top-1 memory slot was written by a frame of the test frame's
own class, what it retrieves instead, and what kind of miss each one is.

A miss is (a) "rank 2-3" when a frame of the right class wrote the 2nd or 3rd slot; else (b) "same gray" when
the frame that wrote the top-1 slot has the same gray image, at the network's size, as a training frame of
the right class (no gray-image retrieval can tell them apart, e.g. Kenney's tank barrels); else (c) "other".
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from memopainter.data.images import load_image
from memopainter.data.preprocess import network_input
from memopainter.evaluation.evaluate import list_test_images
from memopainter.files import write_json, write_text
from memopainter.inference import Colorizer

TOP = 3
KINDS = ("rank 2-3", "same gray", "other")  # of a miss, as the module docstring says
SAME_GRAY = 0.01  # mean |L difference| / 100 under which two gray images count as the same


@dataclass
class ClassRow:
    """One class's retrieval: test frames, top-1 hits, misses by kind, the class retrieved most instead."""

    name: str
    frames: int = 0
    hits: int = 0
    misses: Counter = field(default_factory=Counter)  # kind -> count
    confused_with: Counter = field(default_factory=Counter)  # retrieved class -> count


def diagnose(
    model: str | Path, train_dir: str | Path, test_dir: str | Path, say: Callable[[str], None] = print
) -> list[ClassRow]:
    """Every test frame retrieved as colorize does, each miss classified; one row per class."""
    colorizer = Colorizer.from_pretrained(model)
    memo = colorizer.model
    if memo.memory is None or not memo.class_names:
        raise ValueError(f"{model}: needs a model with a memory trained on class folders")
    grays = _training_grays(memo.source_paths, Path(train_dir), colorizer.image_size)  # (N, S, S)
    rows = {name: ClassRow(name) for name in memo.class_names}
    test_dir = Path(test_dir)
    unknown = 0
    for path in list_test_images(test_dir):
        truth = path.relative_to(test_dir).parts[0]
        if truth not in rows:
            unknown += 1  # a frame of a class the model never saw has no right answer to retrieve
            continue
        rgb, alpha = load_image(path)
        _, slots = memo.memory.retrieve(colorizer.query_keys([colorizer.prepare(rgb, alpha)]), TOP)
        sources = memo.memory.sources[slots[0]].tolist()  # training frame that wrote each slot
        classes = [memo.source_class(s) for s in sources]
        row = rows[truth]
        row.frames += 1
        if classes[0] == truth:
            row.hits += 1
            continue
        row.confused_with[classes[0] or "none"] += 1
        row.misses[_kind(memo, grays, sources[0], truth, classes)] += 1
    frames = sum(r.frames for r in rows.values())
    if unknown:
        say(f"left out {unknown} test frames of classes the model was not trained on")
    if not frames:
        raise ValueError(f"{test_dir}: none of its test frames is of a class the model was trained on")
    say(f"{sum(r.hits for r in rows.values())} of {frames} top-1 hits")
    return [row for row in rows.values() if row.frames]


def _training_grays(paths: list[str], train_dir: Path, size: int) -> torch.Tensor:
    """The network-size gray (L / 100) of every training frame, in the bundle's order."""
    return torch.stack([network_input(*load_image(train_dir / p), size)[0][0] for p in paths])


def _kind(memo, grays: torch.Tensor, source: int, truth: str, classes: list[str | None]) -> str:
    if truth in classes[1:]:
        return "rank 2-3"
    label = memo.class_names.index(truth)
    own = [i for i, c in enumerate(memo.source_classes) if c == label]
    if 0 <= source < len(grays) and own:
        difference = (grays[own] - grays[source]).abs().mean((1, 2))  # (frames of the right class,)
        if float(difference.min()) < SAME_GRAY:
            return "same gray"
    return "other"


def write_diagnosis(rows: list[ClassRow], out: str | Path, command: str) -> list[Path]:
    """OUT/diagnosis.md (per-class table and the share of each kind of miss) and OUT/diagnosis.json."""
    frames, hits = sum(r.frames for r in rows), sum(r.hits for r in rows)
    misses = Counter()
    for r in rows:
        misses.update(r.misses)
    missed = max(frames - hits, 1)
    lines = [
        "# Why retrieval misses",
        "",
        f"Command: `{command}`",
        "",
        f"Top-1 slot written by a frame of the same class: {hits} of {frames} "
        f"({100 * hits / max(frames, 1):.0f}%). Misses: "
        + ", ".join(f"{kind} {misses[kind]} ({100 * misses[kind] / missed:.0f}%)" for kind in KINDS)
        + ".",
        "",
        "| class | frames | top-1 | rank 2-3 | same gray | other | retrieved instead (most often) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in sorted(rows, key=lambda r: r.hits / r.frames):
        confused = ", ".join(f"{name} ({n})" for name, n in r.confused_with.most_common(2)) or "–"
        counts = " | ".join(str(r.misses[kind]) for kind in KINDS)
        lines.append(f"| {r.name} | {r.frames} | {100 * r.hits / r.frames:.0f}% | {counts} | {confused} |")
    paths = [Path(out) / "diagnosis.md", Path(out) / "diagnosis.json"]
    write_text(paths[0], "\n".join(lines) + "\n")
    classes = [{**vars(r), "misses": dict(r.misses), "confused_with": dict(r.confused_with)} for r in rows]
    write_json(paths[1], {"command": command, "classes": classes})
    return paths
