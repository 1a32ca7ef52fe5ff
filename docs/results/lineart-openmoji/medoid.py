"""A decision rule for near-tied memory slots, measured on any trained run: the medoid of the near ties.

When several of an image's top slots score almost alike (an OpenMoji drawing's skin-tone twins), the rule
takes, among the top 6 slots whose score is within MARGIN of the best, the one whose color feature has the
least summed distance (the memory's own color distance) to the others': the least risky guess when the
query cannot tell them apart. Each test image is colored from the top-1 slot and from the rule's slot, and
scored against its own colors (mean CIEDE2000 over opaque pixels at full size, as `evaluate` scores);
prints, per margin, the mean, how many images changed slot, and the mean paired difference with its 95%
t-interval. A line-art run colors each test image's drawing (SPLIT/lineart/test) when there is one.

    python docs/results/lineart-openmoji/medoid.py RUN TEST_DIR
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from memopainter.data.images import load_image, pil_to_tensors
from memopainter.evaluation.evaluate import list_test_images
from memopainter.evaluation.scores import measure
from memopainter.experiments.lineart import drawn_lineart
from memopainter.experiments.statistics import t_interval
from memopainter.inference import Colorizer
from memopainter.inference.upsample import DEFAULT_UPSAMPLE

CANDIDATES = 6
MARGINS = (0.02, 0.05, 0.1, 1.0)  # 1.0: the medoid of all six, whatever their scores


def medoid_slot(scores: torch.Tensor, distances: torch.Tensor, margin: float) -> int:
    """Index into the top slots: scores (K,) descending, distances (K, K) between their values."""
    tied = scores >= scores[0] - margin  # (K,)
    risk = (distances * tied.float()[None]).sum(1)  # (K,) summed distance to the tied slots
    return int(torch.where(tied, risk, torch.full_like(risk, float("inf"))).argmin())


def main(run: Path, test_dir: Path) -> None:
    colorizer = Colorizer.from_pretrained(run)
    memory = colorizer.model.memory
    drawings = drawn_lineart(test_dir) if colorizer.lineart else None
    errors = {margin: [] for margin in (0.0, *MARGINS)}  # 0.0: the top-1 slot itself
    changed = dict.fromkeys(MARGINS, 0)
    for path in list_test_images(test_dir):
        truth = load_image(path)
        drawing = drawings / path.relative_to(test_dir) if drawings is not None else path
        prepared = colorizer.prepare(*load_image(drawing if drawing.is_file() else path))
        scores, slots = memory.retrieve(colorizer.query_keys([prepared]), CANDIDATES)  # (1, K) each
        values = memory.values[slots[0]]  # (K, V)
        distances = torch.stack([memory.distance(values, v.expand_as(values)) for v in values])  # (K, K)
        scored: dict[int, float] = {}
        for margin in errors:
            j = 0 if margin == 0.0 else medoid_slot(scores[0], distances, margin)
            if j not in scored:
                image = colorizer.predict([prepared], slots=slots[:, j : j + 1]).images(
                    0, prepared, DEFAULT_UPSAMPLE
                )[0]
                scored[j] = measure(*truth, [pil_to_tensors(image)[0]], None).delta_e2000
            errors[margin].append(scored[j])
            if j:
                changed[margin] += 1
    top1 = errors[0.0]
    print(f"{run}: {len(top1)} images, top-1 slot {sum(top1) / len(top1):.2f}")
    for margin in MARGINS:
        mean, low, high = t_interval([a - b for a, b in zip(errors[margin], top1, strict=True)])
        print(
            f"margin {margin}: {sum(errors[margin]) / len(top1):.2f}, {changed[margin]} images changed slot, "
            f"minus top-1 {mean:+.2f} [{low:+.2f}, {high:+.2f}]"
        )


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
