"""Where the OpenMoji line-art gap comes from: the tone chosen, or repainting rather than copying.

All six drawings of an OpenMoji emoji (its skin tones) are the same file, so each test drawing has three
identical training twins of other tones. This colors every test drawing with the trained line-art model
conditioned on each twin's color feature in turn (twins in file order, as the nearest reference meets them),
on the twins' medoid (least summed symmetric KL to the other two), on the memory's own top-1 slot, and
copies the first twin's colors unchanged; each scored against the drawing's own colors (mean CIEDE2000 over
the truth's opaque pixels at full size).

    python docs/results/lineart-openmoji/twins.py SPLIT RUN

SPLIT as `data split --lineart` makes it; RUN the MemoPainter run of `experiment lineart` on it.
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

import numpy as np
import torch

from memopainter.color.features import color_feature
from memopainter.data.images import composite_on_white, load_image
from memopainter.evaluation.metrics import delta_e2000
from memopainter.inference import Colorizer


def symmetric_kl(a: torch.Tensor, b: torch.Tensor, eps: float = 1e-8) -> float:
    a, b = a + eps, b + eps
    return float(((a - b) * (a.log() - b.log())).sum())


def main() -> None:
    root, run = Path(sys.argv[1]), Path(sys.argv[2])
    model = Colorizer.from_pretrained(run / "model.safetensors")
    tests = sorted((root / "test").glob("*/*.png"))
    truth = {p: load_image(p) for p in tests}
    twins = {c.name: sorted(c.glob("*.png")) for c in (root / "train").iterdir()}
    feature = {p: color_feature(*load_image(p), "dist") for ps in twins.values() for p in ps}
    drawings = [root / "lineart" / "test" / p.parent.name / p.name for p in tests]

    def score(image, p: Path) -> float:
        rgb, alpha = truth[p]
        pred = torch.from_numpy(np.asarray(image.convert("RGB"), dtype=np.float32) / 255).permute(2, 0, 1)
        return delta_e2000(pred, composite_on_white(rgb, alpha), alpha)

    scores: dict[str, list[float]] = {}
    colored = model.colorize_each(drawings)
    scores["memory top-1"] = [score(c.images[0], p) for c, p in zip(colored, tests, strict=True)]
    for r in range(3):

        def condition(source, rgb, alpha, r=r):
            return feature[twins[Path(source).parent.name][r]]

        colored = model.colorize_each(drawings, condition=condition)
        name = f"twin {r} in file order"
        scores[name] = [score(c.images[0], p) for c, p in zip(colored, tests, strict=True)]
    medoid = {}
    for name, ps in twins.items():
        medoid[name] = int(np.argmin([sum(symmetric_kl(feature[p], feature[q]) for q in ps) for p in ps]))
    chosen = [f"twin {medoid[p.parent.name]} in file order" for p in tests]
    scores["medoid twin"] = [scores[name][i] for i, name in enumerate(chosen)]
    scores["first twin copied"] = []
    for p in tests:
        rgb, alpha = load_image(twins[p.parent.name][0])
        true_rgb, true_alpha = truth[p]
        scores["first twin copied"].append(
            delta_e2000(composite_on_white(rgb, alpha), composite_on_white(true_rgb, true_alpha), true_alpha)
        )
    for name, values in scores.items():
        print(f"{name}: {statistics.mean(values):.2f}")


if __name__ == "__main__":
    main()
